"""``--extractor llm`` on a tiny random Qwen2 saved locally: prompt path, greedy determinism, cache, parsing."""
from __future__ import annotations

import json

import pytest

from affectgpt.eval import score
from affectgpt.eval.llm import LLMExtractor, parse_answer
from helpers import LLM_TEXTS as TEXTS


def test_parse_answer():
    assert parse_answer("Sure. [Happy, 'worried', a very long phrase of many words here]") == ["happy", "worried"]
    assert parse_answer("[x] then [sad, calm.]") == ["sad", "calm"]  # the last list wins
    assert parse_answer("happy, sad\nmore text") == ["happy", "sad"]
    assert parse_answer("") == [] and parse_answer("[]") == []


def test_generation_is_greedy_and_cached(tiny_llm, tmp_path, monkeypatch):
    cache = tmp_path / "cache.jsonl"
    ext = LLMExtractor(tiny_llm, cache_path=cache)
    first = ext.extract_many([TEXTS[0], TEXTS[1], TEXTS[0]])
    assert ext.generated == 2 and len(cache.read_text().splitlines()) == 2
    assert first[0] == first[2]
    # a fresh run without the cache gives the same answers (greedy)
    other = LLMExtractor(tiny_llm, cache_path=tmp_path / "other.jsonl")
    assert other.extract_many(TEXTS) == first[:2]
    # re-scoring: served from the cache, the model is never loaded
    again = LLMExtractor(tiny_llm, cache_path=cache)
    monkeypatch.setattr(again, "_load_model", lambda: pytest.fail("model loaded despite a cache hit"))
    assert again.extract_many(TEXTS) == first[:2] and again.generated == 0


def test_cached_answer_goes_through_the_parser_into_score(tiny_llm, tmp_path):
    cache = tmp_path / "cache.jsonl"
    ext = LLMExtractor(tiny_llm, cache_path=cache)
    text = "A description that the tiny model never sees."
    cache.write_text(json.dumps({"key": ext._key(text), "answer": "The labels: [Angry, furious]"}) + "\n")
    golds = [{"name": "a", "emotions": ["angry"]}]
    preds = [{"name": "a", "description": text}]
    out = score(preds, golds, extractor="llm", llm=str(tiny_llm), llm_cache=cache)
    assert out["extraction"]["from_description"] == 1 and out["label"]["M1"]["recall"] == 1.0
    assert len(cache.read_text().splitlines()) == 1  # nothing new generated


def test_llm_errors(tmp_path):
    with pytest.raises(ValueError, match="needs llm=PATH"):
        score([{"name": "a", "description": "x"}], [{"name": "a", "emotions": ["sad"]}], extractor="llm")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        LLMExtractor(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "c.jsonl").write_text("{broken\n")
    with pytest.raises(ValueError, match="corrupt cache"):
        LLMExtractor(tmp_path, cache_path=tmp_path / "c.jsonl").extract_many(["x"])
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="cannot use the model of .*another folder"):
        LLMExtractor(other, model_from=LLMExtractor(tmp_path))
