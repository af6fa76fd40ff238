"""``--extractor llm``: read labels out of a description with a local Hugging Face causal LM.

The prompt (``PROMPT``, version ``PROMPT_VERSION``) goes through the tokenizer's chat template
when it has one; decoding is greedy, so the answer depends only on model + prompt + text.
Answers are cached in a JSONL file keyed by sha256(model fingerprint, prompt version, text):
re-scoring the same predictions with the same model costs nothing. torch / transformers are
imported only when an uncached text must be run.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from affectgpt.core.fileio import iter_jsonl
from affectgpt.eval.parsing import parse_labels

PROMPT_VERSION = "1"
PROMPT = (
    "Below is a description of a person in a video clip: the visual, acoustic and textual clues and "
    "the emotions they suggest.\n\nDescription: {text}\n\n"
    "List every emotion that the description attributes to the person, as English words separated by "
    "commas inside square brackets, for example [happy, anxious]. Answer [] if there is none."
)
MAX_NEW_TOKENS = 48
_BRACKETS = re.compile(r"\[([^\[\]]*)\]")


def default_cache_path() -> Path:
    root = Path(os.environ.get("AFFECTGPT_CACHE_DIR", Path.home() / ".cache" / "affectgpt"))
    return root / "llm_labels.jsonl"


def model_fingerprint(model_dir: Path) -> str:
    """Identity of a local model folder: its config, tokenizer files and weight file sizes."""
    h = hashlib.sha256()
    for p in sorted(model_dir.iterdir()):
        if not p.is_file():
            continue
        h.update(p.name.encode())
        if p.suffix in (".json", ".jinja", ".txt", ".model"):
            h.update(p.read_bytes())
        else:  # weights: size stands in for content (hashing gigabytes per run is not worth it)
            h.update(str(p.stat().st_size).encode())
    return h.hexdigest()


def parse_answer(answer: str) -> list[str]:
    """Labels of a model answer: the last ``[...]`` list, else the whole first line; items over 4 words dropped."""
    found = _BRACKETS.findall(answer)
    body = found[-1] if found else answer.strip().splitlines()[0] if answer.strip() else ""
    labels = [x.strip(" .") for x in parse_labels(body)]
    return [x for x in labels if x and len(x.split()) <= 4]


class LLMExtractor:
    """Greedy answers of a local causal LM to one prompt, with a persistent answer cache.

    ``prompt`` has a ``{text}`` field; ``prompt_version`` goes into the cache key, so changing the
    prompt means a new version. ``model_from``: another extractor on the same folder whose loaded
    model this one uses (one model in memory for several prompts)."""

    def __init__(self, model_dir, cache_path=None, *, prompt: str = PROMPT, prompt_version: str = PROMPT_VERSION,
                 max_new_tokens: int = MAX_NEW_TOKENS, model_from: LLMExtractor | None = None):
        self.model_dir = Path(model_dir)
        if not (self.model_dir / "config.json").is_file():
            raise FileNotFoundError(f"{self.model_dir}: not a Hugging Face model folder (no config.json)")
        if model_from is not None and model_from.model_dir != self.model_dir:
            raise ValueError(f"{self.model_dir}: cannot use the model of {model_from.model_dir} (another folder)")
        self.cache_path = Path(cache_path) if cache_path else default_cache_path()
        self.prompt, self.prompt_version, self.max_new_tokens = prompt, prompt_version, max_new_tokens
        self.model_from = model_from
        self.fingerprint = model_from.fingerprint if model_from is not None else model_fingerprint(self.model_dir)
        self._model = self._tokenizer = None
        self.generated = 0  # texts actually run through the model (not served by the cache)

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{self.fingerprint}\n{self.prompt_version}\n{text}".encode()).hexdigest()

    def _load_cache(self) -> dict[str, str]:
        cache = {}
        if self.cache_path.is_file():
            try:
                for i, row in iter_jsonl(self.cache_path):
                    if not (isinstance(row.get("key"), str) and isinstance(row.get("answer"), str)):
                        raise ValueError(f"{self.cache_path}:{i}: expected 'key' and 'answer' strings")
                    cache[row["key"]] = row["answer"]
            except ValueError as e:
                raise ValueError(f"{e}; a corrupt cache line, delete the file to rebuild") from None
        return cache

    def _load_model(self):
        if self.model_from is not None:
            if self.model_from._model is None:
                self.model_from._load_model()
            self._model, self._tokenizer = self.model_from._model, self.model_from._tokenizer
            return
        from transformers import AutoModelForCausalLM, AutoTokenizer  # lazy: the scorer is torch-free until an LLM runs

        self._tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self._model = AutoModelForCausalLM.from_pretrained(self.model_dir)
        self._model.eval()

    def _generate(self, text: str) -> str:
        import torch  # lazy: the scorer is torch-free until an LLM runs

        if self._model is None:
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
        """The raw answer to each text; uncached texts are generated and appended to the cache file."""
        cache = self._load_cache()
        answers = []
        new_rows = []
        for text in texts:
            key = self._key(text)
            if key not in cache:
                cache[key] = self._generate(text)
                self.generated += 1
                new_rows.append({"key": key, "answer": cache[key]})
            answers.append(cache[key])
        if new_rows:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            with self.cache_path.open("a", encoding="utf-8") as f:
                for row in new_rows:
                    f.write(json.dumps(row) + "\n")
        return answers

    def extract_many(self, texts: list[str]) -> list[list[str]]:
        """Labels for each text (``parse_answer`` of its answer)."""
        return [parse_answer(a) for a in self.answers(texts)]
