"""``--labels llm`` for MER-UniBench: a local HF causal LM reads labels out of an answer, then maps them to a sentiment.

The two steps follow the authors' pipeline (label list from the answer; positive / negative /
neutral from the list), with prompts in our own words and greedy decoding, so the result depends
only on model + prompt + text. Every answer is cached (see :mod:`affectgpt.eval.llm`), keyed by
the model fingerprint, the step and its prompt version. torch / transformers load on first use.
"""
from __future__ import annotations

import re
from pathlib import Path

from .llm import LLMExtractor, parse_answer

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


class _Step(LLMExtractor):
    """One prompt over the shared model and cache."""

    def __init__(self, model_dir, cache_path, prompt: str, step: str, max_new_tokens: int, owner=None):
        super().__init__(model_dir, cache_path)
        self.prompt, self.step, self.max_new_tokens, self.owner = prompt, step, max_new_tokens, owner

    def _key(self, text: str) -> str:
        import hashlib

        return hashlib.sha256(f"{self.fingerprint}\n{PROMPT_VERSION}:{self.step}\n{text}".encode()).hexdigest()

    def _generate(self, text: str) -> str:
        import torch

        if self.owner is not None:  # the sentiment step borrows the extraction step's loaded model
            if self.owner._model is None:
                self.owner._load_model()
            self._model, self._tokenizer = self.owner._model, self.owner._tokenizer
        elif self._model is None:
            self._load_model()
        tok = self._tokenizer
        prompt = self.prompt.format(text=text.strip())
        if tok.chat_template:
            ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                          return_tensors="pt", return_dict=True)["input_ids"]
        else:
            ids = tok(prompt, return_tensors="pt")["input_ids"]
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        with torch.no_grad():
            out = self._model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                       max_new_tokens=self.max_new_tokens, pad_token_id=pad)
        return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)

    def answers(self, texts: list[str]) -> list[str]:
        """Raw answers (cached) for each text."""
        cache = self._load_cache()
        new, out = [], []
        for text in texts:
            key = self._key(text)
            if key not in cache:
                cache[key] = self._generate(text)
                self.generated += 1
                new.append({"key": key, "answer": cache[key]})
            out.append(cache[key])
        if new:
            import json

            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            with self.cache_path.open("a", encoding="utf-8") as f:
                f.writelines(json.dumps(r) + "\n" for r in new)
        return out


class UniBenchLLM:
    """``extract(answers) -> label lists`` and ``sentiments(label lists) -> words`` with one local LM."""

    def __init__(self, model_dir, cache_path=None):
        self.model_dir = Path(model_dir)
        self.labels = _Step(model_dir, cache_path, EXTRACT_PROMPT, "extract", 64)
        self.sentiment = _Step(model_dir, cache_path, SENTIMENT_PROMPT, "sentiment", 8, owner=self.labels)

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
