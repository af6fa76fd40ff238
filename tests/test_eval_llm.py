"""``--extractor llm`` on a tiny random Qwen2 saved locally: prompt path, greedy determinism, cache, parsing."""
from __future__ import annotations

import json

import pytest

from affectgpt.eval import score
from affectgpt.eval.llm import LLMExtractor, parse_answer

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TEXTS = ["He frowns and shouts. He seems angry.", "She smiles warmly; she is happy and relaxed."]


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    d = tmp_path_factory.mktemp("tiny_qwen2")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(TEXTS * 20 + ["happy, sad, angry, worried, [ ] emotion description person"] * 20, trainer)
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(d)
    cfg = transformers.Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                   num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
                                   eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    transformers.Qwen2ForCausalLM(cfg).save_pretrained(d)
    return d


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
