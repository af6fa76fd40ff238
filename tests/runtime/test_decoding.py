"""The fixed-shape single-clip decoding path (affectgpt/runtime/decoding.py) against transformers'
greedy ``generate`` on the tiny model: identical token ids, identical rows through
``predict_one``, and clear refusals where it does not apply."""

from __future__ import annotations

import pytest
import torch

from helpers import build, make_items, tiny_cfg, write_text_manifest


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("decoding-data")
    write_text_manifest(root)
    model = build(tiny_cfg(root))
    model.eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # LoRA B starts at zero; random B makes the next token depend on the context
        for name, p in model.llm.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    items = make_items()
    for it in items:
        it.pop("target")
    return model, items


def one_clip(model, item):
    from affectgpt.data.collate import Collator

    return Collator(model.tokenizer, model.token_plan(), max_length=4096, train=False)([item])


@torch.no_grad()
def test_static_cache_tokens_equal_plain_greedy(tiny):
    from affectgpt.runtime.decoding import greedy_static

    model, items = tiny
    tok = model.tokenizer
    for item in items[:2]:  # video + audio; video only
        batch = one_clip(model, item)
        embeds = model.embed(batch, model.encode_media(batch))
        n = 12
        plain = model.llm.generate(inputs_embeds=embeds, attention_mask=batch["attention_mask"], max_new_tokens=n,
                                   min_new_tokens=n, do_sample=False, eos_token_id=tok.eos_token_id,
                                   pad_token_id=tok.pad_token_id, temperature=None, top_p=None, top_k=None)
        ids, timing = greedy_static(model, embeds, n, "static", ignore_eos=True)
        assert ids == plain[0].tolist() and len(ids) == n
        assert len(set(ids)) > 1  # not a degenerate repetition that any cache would reproduce
        assert timing["tokens"] == n and timing["prefill_s"] > 0 and timing["tokens_per_s"] > 0


@torch.no_grad()
def test_predict_one_gives_the_same_row_with_decode_static(tiny, tmp_path):
    from affectgpt.data.manifest import Sample
    from affectgpt.data.synthetic import write_clip
    from affectgpt.runtime.inference import predict_one

    model, _ = tiny
    import numpy as np

    t = np.arange(int(1.5 * 16000)) / 16000
    clip = write_clip(tmp_path / "c.mp4", np.random.default_rng(0).integers(0, 256, (12, 64, 64, 3), dtype=np.uint8),
                      (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), fps=8, sample_rate=16000)
    sample = Sample(name="c", video=clip, audio=None, subtitle="I went to the market.")
    gen = {"max_new_tokens": 10, "do_sample": False, "num_beams": 1}
    plain, _ = predict_one(model, sample, "describe", gen)
    fast, timing = predict_one(model, sample, "describe", gen, profile=True, decode="static")
    assert fast == plain
    assert 1 <= timing["tokens"] <= 10 and timing["encode_s"] > 0 and timing["prompt_tokens"] > 0


def test_fixed_shape_path_refuses_what_it_cannot_do(tiny):
    from affectgpt.runtime import decoding

    model, items = tiny
    with pytest.raises(ValueError, match="decode must be one of"):
        decoding.check_mode("fast", torch.device("cpu"))
    with pytest.raises(ValueError, match="decode=graph replays a CUDA graph and needs a CUDA device"):
        decoding.check_mode("graph", torch.device("cpu"))
    from affectgpt.data.collate import Collator

    two = Collator(model.tokenizer, model.token_plan(), max_length=4096, train=False)(items[:2])
    with pytest.raises(ValueError, match="decode=static: it decodes one clip at a time, the batch has 2"):
        decoding.generate(model, two, {"max_new_tokens": 2}, "static")
    with pytest.raises(ValueError, match="greedily"):
        decoding.generate(model, one_clip(model, items[0]), {"max_new_tokens": 2, "do_sample": True}, "static")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs and compiled decode steps: lent GPU machine")
@pytest.mark.parametrize("mode", ["graph", "compile"])
@torch.no_grad()
def test_replayed_decode_step_equals_plain_greedy_on_cuda(tiny, mode):
    from affectgpt.runtime.decoding import greedy_static

    model, items = tiny
    model.to("cuda")
    tok = model.tokenizer
    batch = {k: v.to("cuda") if torch.is_tensor(v) else v for k, v in one_clip(model, items[0]).items()}
    batch["audio"] = [None if a is None else a.to("cuda") for a in batch["audio"]]
    embeds = model.embed(batch, model.encode_media(batch))
    plain = model.llm.generate(inputs_embeds=embeds, attention_mask=batch["attention_mask"], max_new_tokens=16,
                               min_new_tokens=16, do_sample=False, eos_token_id=tok.eos_token_id,
                               pad_token_id=tok.pad_token_id, temperature=None, top_p=None, top_k=None)
    for _ in range(2):  # the second call reuses nothing from the first: a fresh cache and graph
        ids, _ = greedy_static(model, embeds, 16, mode, ignore_eos=True)
        assert ids == plain[0].tolist()
