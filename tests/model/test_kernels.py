"""LLM speed options that must not change the math: ``model.llm.kernels`` (refused with a clear
message where it cannot run) and the gradient-checkpointing modes (same gradients, and the
chosen modules really are recomputed)."""

from __future__ import annotations

import pytest
import torch

from helpers import build, make_items, tiny_cfg, write_text_manifest


def test_liger_is_refused_off_cuda_and_without_triton(monkeypatch):
    import importlib.util

    from affectgpt.model import kernels

    with pytest.raises(ValueError, match=r"model.llm.kernels=liger: the model is on cpu, .*need a CUDA device"):
        kernels.check_kernels("liger", "cpu")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "triton" else real(name, *a))
    with pytest.raises(ValueError, match=r"kernels=liger: the Python package 'triton' is not installed"):
        kernels.check_kernels("liger", "cuda:0")
    no_liger = lambda name, *a: None if name == "liger_kernel" else real(name, *a)  # noqa: E731
    monkeypatch.setattr(importlib.util, "find_spec", no_liger)
    with pytest.raises(ValueError, match=r"'liger-kernel' is not installed \(pip install liger-kernel"):
        kernels.check_kernels("liger", "cuda")
    with pytest.raises(ValueError, match=r"model.llm.kernels must be one of \['none', 'liger'\], got 'fast'"):
        kernels.check_kernels("fast", "cuda")
    assert kernels.check_kernels("none", "cpu") == "none"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("kernels-data")
    write_text_manifest(root)
    return root


def test_the_tiny_model_with_kernels_liger_on_cpu_fails_at_build(root):
    with pytest.raises(ValueError, match="kernels=liger: the model is on cpu"):
        build(tiny_cfg(root, "model.llm.kernels=liger"))


def test_checkpointing_modes_keep_the_gradients_and_recompute_what_they_say(root):
    from affectgpt.data.collate import Collator
    from affectgpt.model.llm import set_gradient_checkpointing

    model = build(tiny_cfg(root))
    model.eval()
    model.llm.train()  # checkpointing acts in training mode; the tiny LoRA has no dropout
    batch = Collator(model.tokenizer, model.token_plan(), max_length=4096)(make_items())
    layers = model.llm.get_base_model().get_decoder().layers
    calls = [0] * len(layers)
    for i, layer in enumerate(layers):
        layer.mlp.gate_proj.register_forward_pre_hook(lambda *_, i=i: calls.__setitem__(i, calls[i] + 1))

    def grads(mode, every=1):
        set_gradient_checkpointing(model.llm, mode, every)
        model.zero_grad(set_to_none=True)
        calls[:] = [0] * len(layers)
        out = model(batch)
        loss_sum, n = out.loss_sum, out.target_tokens
        (loss_sum / n).backward()
        return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}, list(calls)

    ref, ref_calls = grads("none")
    assert ref_calls == [1, 1]
    for mode, every, recomputed in (("full", 1, [2, 2]), ("mlp", 1, [2, 2]), ("mlp", 2, [2, 1]), ("full", 2, [2, 1]),
                                    (True, 1, [2, 2]), (False, 1, [1, 1])):
        got, got_calls = grads(mode, every)
        assert got_calls == recomputed, (mode, every, got_calls)
        assert set(got) == set(ref)
        for k in ref:
            assert torch.allclose(got[k], ref[k], rtol=1e-5, atol=1e-6), (mode, every, k)
    with pytest.raises(ValueError, match="gradient_checkpointing must be false, true/full or mlp, got 'attn'"):
        set_gradient_checkpointing(model.llm, "attn")


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="Liger's Triton kernels need a CUDA device (lent GPU machine)"
)
def test_liger_loss_and_gradients_match_the_unfused_model_on_cuda(root):
    """The tiny model built twice with the same seed: kernels=none first (Liger patches RoPE for
    the whole process), then kernels=liger; loss and LoRA gradients agree to bf16 tolerance."""
    from affectgpt.data.collate import Collator
    from affectgpt.model.kernels import liger_unavailable

    if liger_unavailable("cuda"):
        pytest.skip(liger_unavailable("cuda"))
    results = []
    for kernels in ("none", "liger"):
        model = build(tiny_cfg(root, f"model.llm.kernels={kernels}", "model.llm.dtype=bfloat16"), device="cuda")
        model.eval()
        batch = Collator(model.tokenizer, model.token_plan(), max_length=4096)(make_items())
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(batch)
            loss_sum, n = out.loss_sum, out.target_tokens
        (loss_sum / n).backward()
        grads = {k: p.grad.float().clone() for k, p in model.named_parameters() if "lora_" in k and p.grad is not None}
        results.append((float(loss_sum / n), grads))
        del model
    (loss_none, g_none), (loss_liger, g_liger) = results
    assert loss_liger == pytest.approx(loss_none, rel=2e-2), (loss_liger, loss_none)
    assert set(g_none) == set(g_liger) and g_none
    for k in g_none:
        scale = float(g_none[k].abs().max()) + 1e-6
        assert float((g_liger[k] - g_none[k]).abs().max()) <= 5e-2 * scale, k
