"""AffectGPT as a whole: shipped configs on meta, gradients reach only adapters and LoRA, mixed
batches (no audio / no video) through forward and generate, audio windowing end to end, the
real Qwen2.5 tokenizer through the tiny model, strict trainable-state loading."""

import math
from pathlib import Path

import pytest
import torch

from helpers import build, make_items, tiny_cfg, write_text_manifest

ROOT = Path(__file__).resolve().parents[2]
def compose(overrides):
    from affectgpt.apps.summary import compose as _compose

    return _compose(overrides)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-data")
    write_text_manifest(root)
    return root


def collate(model, items, train=True):
    from affectgpt.data.collate import Collator

    return Collator(model.tokenizer, model.token_plan(), max_length=4096, train=train)(items)


# --------------------------------------------------------------------- shipped configs on meta
_META: dict = {}


def meta_model(name, data_root):
    """Each shipped config built once on meta (the 7B takes seconds even without memory)."""
    if name not in _META:
        cfg = compose([f"model={name}", f"data.root={data_root}"]).model
        _META[name] = build(cfg, device="meta", weights="random")
    return _META[name]


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "conf" / "model").glob("*.yaml")))
def test_every_shipped_config_builds_on_meta(name, data_root):
    from affectgpt.model.summary import memory_estimate, parameter_rows

    model = meta_model(name, data_root)
    assert model.llm.get_input_embeddings().weight.device.type == "meta"
    rows = {r.module: r for r in parameter_rows(model)}
    assert rows["total"].trainable == sum(p.numel() for p in model.parameters() if p.requires_grad) > 0
    mem = memory_estimate(model, tokens=1024, target_tokens=256)
    assert mem["total_ckpt"] < mem["total_no_ckpt"]
    assert len(model.tokenizer) <= model.llm.get_input_embeddings().weight.shape[0]


def test_affectgpt_7b_summary_counts(data_root):
    """Qwen2.5-7B: 7,615,616,512 parameters; LoRA r16 on q,k,v,o,gate,up,down of 28 layers:
    28 x 16 x (2·(3584+3584) + 2·(3584+512) + 3·(3584+18944)) = 40,370,176."""
    from affectgpt.model.summary import memory_estimate, parameter_rows

    model = meta_model("affectgpt-7b", data_root)
    rows = {r.module: r for r in parameter_rows(model)}
    assert rows["llm (frozen base)"].total == 7_615_616_512
    assert rows["llm (LoRA, trainable)"].trainable == 28 * 16 * (2 * 7168 + 2 * 4096 + 3 * 22528) == 40_370_176
    assert rows["vision"].total == 303_966_208 and rows["vision"].trainable == 0
    assert rows["audio"].total == 635_048_960 and rows["audio"].trainable == 0
    assert 10_000_000 < rows["total"].trainable < 100_000_000
    assert rows["total"].trainable == 62_967_042
    assert model.audio.n_mels == 128 and model.vision.out_dim == 768
    assert model.token_plan().video_tokens == 1 and model.token_plan().fusion_tokens == 1
    mem = memory_estimate(model, tokens=2048, target_tokens=512)
    assert 15 * 2**30 < mem["weights"] < 17 * 2**30  # bf16: 2 bytes x 8.6 B
    assert mem["trainable_state"] == 16 * 62_967_042


def test_mid_config_counts(data_root):
    from affectgpt.model.summary import parameter_rows

    rows = {r.module: r for r in parameter_rows(meta_model("affectgpt-mid", data_root))}
    assert rows["llm (frozen base)"].total == 1_543_714_304 and rows["total"].trainable == 27_279_362


def test_summary_cli_prints_the_table(capsys, data_root):
    from affectgpt.apps.summary import main
    from affectgpt.model.summary import parameter_rows

    assert main(["model=tiny", f"data.root={data_root}", "tokens=512", "target_tokens=128"]) == 0
    out = capsys.readouterr().out
    total = parameter_rows(meta_model("tiny", data_root))[-1]
    assert f"| total                    | {total.total:>15,} | {total.trainable:>13,} |" in out
    assert "llm (frozen base)" in out and "512 tokens (128 targets)" in out and "with (config: off)" in out


# --------------------------------------------------------------------- training step
def test_gradients_reach_only_adapters_and_lora_and_frozen_stay_bit_identical(data_root):
    model = build(tiny_cfg(data_root, "model.fusion=true", "model.fusion_dim=32"))
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}  # standardizer + pixel statistics
    assert any(".standardizer." in n for n in buffers), sorted(buffers)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("video_adapter.", "audio_adapter.", "fusion.", "llm.")) for n in trainable)
    assert all("lora_" in n or "modules_to_save" in n for n in trainable if n.startswith("llm."))
    assert not any(n.startswith(("vision.", "audio.")) for n in trainable)
    from affectgpt.recipe.groups import optimizer_groups

    opt = torch.optim.AdamW(optimizer_groups(model, 1e-2, {"llm": 1e-3}, weight_decay=0.05))
    model.train()
    out = model(collate(model, make_items()))
    loss, n = out.loss_sum, out.target_tokens
    (loss / n).backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad <= trainable
    for prefix in ("video_adapter.", "audio_adapter.", "fusion.", "llm."):
        assert any(n.startswith(prefix) for n in with_grad), prefix
    opt.step()
    for n, p in model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n
    for n, b in model.named_buffers():  # a training step moves no statistic (they are fixed before training)
        assert torch.equal(b, buffers[n]), n


def test_param_groups_name_modules_and_rates(data_root):
    from affectgpt.recipe.groups import optimizer_groups

    model = build(tiny_cfg(data_root, "model.fusion=true", "model.fusion_dim=32"))
    groups = optimizer_groups(model, 1e-3, {"video_adapter": 5e-3, "llm": None}, weight_decay=0.1)
    by_name = {g["name"]: g for g in groups}
    assert {"video_adapter", "video_adapter_nodecay", "audio_adapter", "fusion", "llm", "llm_extra_nodecay"} <= set(
        by_name
    )
    assert by_name["video_adapter"]["lr"] == 5e-3 and by_name["llm"]["lr"] == 1e-3
    assert by_name["llm_extra_nodecay"]["lr"] == 1e-3  # peft modules_to_save: "llm"'s rate unless given its own
    assert by_name["llm_extra_nodecay"]["weight_decay"] == 0.0 and by_name["fusion"]["weight_decay"] == 0.1
    assert optimizer_groups(model, 1e-3, {"llm_extra": 1e-2})[-1]["lr"] == 1e-2
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in model.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="unknown parameter groups"):
        optimizer_groups(model, 1e-3, {"vision": 1.0})


def test_trainability_switches(data_root):
    model = build(tiny_cfg(data_root, "model.video_adapter.trainable=false", "model.llm.lora.enabled=false",
                           "model.llm.lora.modules_to_save=[]"))
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names and all(n.startswith("audio_adapter.") for n in names)


# --------------------------------------------------------------------- mixed batches
def test_batch_mixing_missing_audio_and_video_runs_forward_and_generate(data_root):
    model = build(tiny_cfg(data_root, "model.fusion=true", "model.fusion_dim=32"))
    items = make_items(with_audio=(True, False, True, False), with_video=(True, True, False, False),
                       seconds=(1.3, 0, 2.0, 0))
    items[3]["audio"] = torch.randn(8000) * 0.1  # audio only
    items[3]["frames"] = None
    batch = collate(model, items)
    plan = model.token_plan()
    pads = ("<|video_pad|>", "<|audio_pad|>", "<|fusion_pad|>")
    vid, aud, fus = (model.tokenizer.convert_tokens_to_ids(t) for t in pads)
    counts = [(int((r == vid).sum()), int((r == aud).sum()), int((r == fus).sum())) for r in batch["input_ids"]]
    assert counts == [(plan.video_tokens, plan.audio_tokens(20800), 1), (plan.video_tokens, 0, 1),
                      (0, plan.audio_tokens(32000), 1), (0, plan.audio_tokens(8000), 1)]
    out = model(batch)
    loss, n = out.loss_sum, out.target_tokens
    assert torch.isfinite(loss) and n > 0
    model.eval()
    texts = model.generate(collate(model, items, train=False), max_new_tokens=4)
    assert len(texts) == 4 and all(isinstance(t, str) for t in texts)


def test_fully_masked_target_is_an_error(data_root):
    model = build(tiny_cfg(data_root))
    batch = collate(model, make_items())
    batch["labels"][1] = -100
    with pytest.raises(RuntimeError, match="clip1.*no target tokens"):
        model(batch)


# --------------------------------------------------------------------- audio windowing
WINDOW_CASES = {  # seconds -> tokens with 2-s windows every 2 s, one query (adapters.py docstring)
    "chunk": {1.0: 1, 7.3: 4, 30.0: 15, 45.0: 23},
    "truncate": {1.0: 1, 7.3: 4, 30.0: 15, 45.0: 15},
}


@pytest.mark.parametrize("policy", ["chunk", "truncate"])
def test_audio_windowing_encoder_adapter_and_plan_agree(data_root, policy):
    model = build(tiny_cfg(data_root, f"model.audio.long_audio={policy}", "model.audio.pad_to_30s=true",
                           "model.audio_adapter.window_seconds=2.0", "model.audio_adapter.stride_seconds=2.0",
                           "model.audio_adapter.queries_per_window=1"))
    plan = model.token_plan()
    waves = [torch.randn(int(s * 16000)) * 0.1 for s in WINDOW_CASES[policy]]
    feats = model.audio(waves)
    cap = 30 * 16000 if policy == "truncate" else 10**9
    assert [f.shape[0] for f in feats] == [math.ceil(min(w.shape[0], cap) / 320) for w in waves]
    _, counts = model.audio_adapter(feats)
    expected = list(WINDOW_CASES[policy].values())
    assert counts == expected
    assert [plan.audio_tokens(w.shape[0]) for w in waves] == expected
    assert [model.audio_adapter.num_tokens(f.shape[0]) for f in feats] == expected


# --------------------------------------------------------------------- real tokenizer, strict state
def test_real_qwen25_tokenizer_through_forward_and_backward(data_root):
    model = build(tiny_cfg(data_root, "model.tiny_tokenizer=qwen2.5"))
    tok = model.tokenizer
    assert len(tok) == 151667 and tok.convert_tokens_to_ids("<|video_pad|>") == 151656
    assert tok("Hello world").input_ids == [9707, 1879]
    batch = collate(model, make_items())
    text = tok.decode(batch["input_ids"][0])
    assert text.startswith("<|im_start|>system\n") and "<|im_start|>assistant\n" in text
    loss = model(batch).loss_sum
    loss.backward()
    lora = [p for name, p in model.named_parameters() if "lora_B" in name]
    assert torch.isfinite(loss) and any(p.grad is not None and p.grad.abs().sum() > 0 for p in lora)


def test_trainable_state_loads_strictly(data_root):
    model = build(tiny_cfg(data_root))
    state = model.trainable_state_dict()
    assert any(k.endswith("standardizer.mean") for k in state)
    model.load_trainable_state_dict(state, source="same")
    extra = {**state, "video_adapter.bogus": torch.zeros(1)}
    with pytest.raises(RuntimeError, match=r"ckpt-x.*unexpected=\['video_adapter.bogus'\]"):
        model.load_trainable_state_dict(extra, source="ckpt-x")
    key = next(iter(state))
    partial = {k: v for k, v in state.items() if k != key}
    with pytest.raises(RuntimeError, match="missing=.*" + key.replace(".", r"\.")):
        model.load_trainable_state_dict(partial, source="ckpt-y")


def test_gradient_checkpointing_gives_the_same_gradients(data_root):
    grads = []
    for ckpt in ("false", "true"):
        model = build(tiny_cfg(data_root, f"model.llm.gradient_checkpointing={ckpt}",
                               "model.video_adapter.dropout=0", "model.audio_adapter.dropout=0"))
        model.train()
        out = model(collate(model, make_items()))
        loss, n = out.loss_sum, out.target_tokens
        (loss / n).backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and any("lora_A" in k for k in grads[0])
    for k in grads[0]:
        torch.testing.assert_close(grads[0][k], grads[1][k], atol=1e-5, rtol=1e-4)


def test_bf16_llm_and_encoders_run_a_step(data_root):
    model = build(tiny_cfg(data_root, "model.llm.dtype=bfloat16", "model.vision.dtype=bfloat16",
                           "model.audio.dtype=bfloat16"))
    assert model.llm.get_input_embeddings().weight.dtype == torch.bfloat16
    lora = [p for k, p in model.named_parameters() if "lora_A" in k]
    assert lora and all(p.dtype == torch.float32 for p in lora)  # peft keeps adapters in fp32
    loss = model(collate(model, make_items())).loss_sum
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in lora)


def test_init_does_not_depend_on_whether_the_tiny_assets_already_existed(tmp_path):
    write_text_manifest(tmp_path)
    first = build(tiny_cfg(tmp_path)).trainable_state_dict()  # writes the assets
    second = build(tiny_cfg(tmp_path)).trainable_state_dict()  # finds them
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_init_key_selects_random_weights(data_root):
    model = build(tiny_cfg(data_root, "model.init=random"), device="meta")
    assert model.weights == "random" and model.llm.get_input_embeddings().weight.is_meta
    with pytest.raises(ValueError, match="must be 'pretrained' or 'random', got 'zeros'"):
        build(tiny_cfg(data_root, "model.init=zeros"), device="meta")
