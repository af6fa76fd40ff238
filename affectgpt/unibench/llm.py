"""``--labels llm`` for MER-UniBench: a local HF causal LM reads labels out of an answer, then maps them to a sentiment.

The two steps follow the authors' pipeline (label list from the answer; positive / negative /
neutral from the list), with prompts in our own words and greedy decoding, so the result depends
only on model + prompt + text. Every answer is cached (see :mod:`affectgpt.eval.llm`), keyed by
the model fingerprint, the step and its prompt version. torch / transformers load on first use.
"""
from __future__ import annotations

import re
from pathlib import Path

from affectgpt.eval.llm import LLMExtractor, parse_answer

PROMPT_VERSION = "unibench-1"
EXTRACT_PROMPT = (
    "You are an expert in emotion analysis. The text below describes a person in a video and gives clues "
    "about their emotions. Name the emotional states of the main character (the one the clues describe in "
    "most detail). Give only states that the text clearly supports, as a comma-separated list inside square "
    "brackets; give [] when none can be told.\n"
    "Example: \"It is hard to say what she feels.\" -> []\n"
    "Example: \"He seems happy, sad, and angry.\" -> [happy, sad, angry]\n\n"
    "Text: {text}\nOutput:"
)
SENTIMENT_PROMPT = (
    "You are an expert in emotion analysis. The words below describe a person's emotions. Which one of "
    "positive, negative or neutral fits them best? Answer with that one word, without explanation.\n"
    "Example: [joyful] -> positive\nExample: [] -> neutral\n\nWords: {text}\nOutput:"
)
_SENTIMENT = re.compile(r"\b(positive|negative|neutral)\b", re.IGNORECASE)


class UniBenchLLM:
    """``extract(answers) -> label lists`` and ``sentiments(label lists) -> words`` with one local LM."""

    def __init__(self, model_dir, cache_path=None):
        self.model_dir = Path(model_dir)
        self.labels = LLMExtractor(model_dir, cache_path, prompt=EXTRACT_PROMPT,
                                   prompt_version=f"{PROMPT_VERSION}:extract", max_new_tokens=64)
        self.sentiment = LLMExtractor(model_dir, cache_path, prompt=SENTIMENT_PROMPT,
                                      prompt_version=f"{PROMPT_VERSION}:sentiment", max_new_tokens=8,
                                      model_from=self.labels)

    def extract(self, texts: list[str]) -> list[list[str]]:
        return [parse_answer(a) if t.strip() else [] for a, t in zip(self.labels.answers(texts), texts, strict=False)]

    def sentiments(self, label_lists: list[list[str]]) -> list[str]:
        """The first of positive / negative / neutral in each answer; another answer is kept as said (it counts 0)."""
        texts = ["[" + ", ".join(lab) + "]" for lab in label_lists]
        out = []
        for a in self.sentiment.answers(texts):
            m = _SENTIMENT.search(a)
            out.append(m.group(1).lower() if m else a.strip().lower())
        return out
