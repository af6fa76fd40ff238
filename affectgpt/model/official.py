"""The released AffectGPT checkpoints (ICML 2025, MER2025/MER2026 baselines): their layout as data.

A released ``.pth`` is ``torch.save({"model", "optimizer", "config", "scaler", "epoch"})`` where
``model`` holds the trainable tensors only: 392 LoRA tensors (peft r 16 on q, k, v, o, gate, up,
down of every Qwen2.5-7B layer) and 20 adapter tensors, 412 in all, float32, 57,168,644
parameters (docs/official-checkpoints.md; /work/shared/notes/official-checkpoint.md §1.2).

``official_spec(dims)`` is that layout (official name → shape, in the file's order) at any widths:
the defaults are the released 7B ones, small ``OfficialDims`` describe the tiny test fixture.
``ADAPTER_MAP`` names where each official module lands in this repository (``affectgpt/model``
with ``model=affectgpt-official``); ``image_llama_proj`` is never used by the released config and
is dropped by name. ``to_ours`` checks a state dict against the spec (every missing, unexpected
and mis-shaped key named) and renames it; nothing is loaded with ``strict=False``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# peft target modules of one decoder layer, in the file's order (q, k, v, o, gate, up, down).
LORA_MODULES = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
OFFICIAL_LORA_PREFIX = "llama_model.base_model.model.model.layers."
OUR_LORA_PREFIX = "llm.base_model.model.model.layers."
# Official adapter module → this repository's module (the .weight/.bias suffix is kept).
ADAPTER_MAP = {
    "video_attention_mlp": "video_adapter.pool.score",   # raw score per frame/face (score pooling)
    "affectgpt_proj": "video_adapter.proj",              # pooled video/face → LLM width
    "audio_attention_mlp": "audio_adapter.pool.score",   # raw score per 2-s clip
    "audio_llama_proj": "audio_adapter.proj",
    "multi_audio_embs": "fusion.audio",                  # pre-fusion: audio mean → fusion width
    "multi_video_embs": "fusion.video",
    "attention_mlp": "fusion.weight.0",                  # linear fusion weight net, layer 1 (no activation)
    "fc_att": "fusion.weight.1",                         # layer 2 → 2 raw weights (no softmax)
    "multi_llama_proj": "fusion.proj",
}
DROPPED = ("image_llama_proj",)  # the image path: unused by the released config, left at its random init
TOP_LEVEL = ("model", "optimizer", "config", "scaler", "epoch")
PARAMETERS_7B = 57_168_644


@dataclass(frozen=True)
class OfficialDims:
    """The widths that fix the layout; the defaults are the released Qwen2.5-7B checkpoints'."""

    llm_hidden: int = 3584
    llm_layers: int = 28
    llm_intermediate: int = 18944
    llm_kv: int = 512  # num_key_value_heads x head_dim
    lora_r: int = 16
    vision: int = 768  # CLIP ViT-L/14 projected image embedding
    audio: int = 1024  # HuBERT-large hidden size

    @property
    def fusion(self) -> int:  # the official ``max_hidden_size``
        return max(self.vision, self.audio)


def _lora_shapes(d: OfficialDims) -> dict[str, tuple[tuple[int, int], tuple[int, int]]]:
    h, r = d.llm_hidden, d.lora_r
    out = {"self_attn.q_proj": h, "self_attn.k_proj": d.llm_kv, "self_attn.v_proj": d.llm_kv,
           "self_attn.o_proj": h, "mlp.gate_proj": d.llm_intermediate, "mlp.up_proj": d.llm_intermediate,
           "mlp.down_proj": h}
    inp = {m: (d.llm_intermediate if m == "mlp.down_proj" else h) for m in LORA_MODULES}
    return {m: ((r, inp[m]), (out[m], r)) for m in LORA_MODULES}


def official_spec(d: OfficialDims = OfficialDims()) -> dict[str, tuple[int, ...]]:
    """Every tensor of a released ``model`` state dict, in the file's order, with its shape."""
    spec: dict[str, tuple[int, ...]] = {}
    lora = _lora_shapes(d)
    for i in range(d.llm_layers):
        for m in LORA_MODULES:
            a, b = lora[m]
            spec[f"{OFFICIAL_LORA_PREFIX}{i}.{m}.lora_A.default.weight"] = a
            spec[f"{OFFICIAL_LORA_PREFIX}{i}.{m}.lora_B.default.weight"] = b
    h, v, a, f = d.llm_hidden, d.vision, d.audio, d.fusion
    linears = [("image_llama_proj", h, v), ("video_attention_mlp", 1, v), ("affectgpt_proj", h, v),
               ("audio_attention_mlp", 1, a), ("audio_llama_proj", h, a), ("multi_audio_embs", f, a),
               ("multi_video_embs", f, v), ("attention_mlp", f, 2 * f), ("fc_att", 2, f),
               ("multi_llama_proj", h, f)]
    for name, out_f, in_f in linears:
        spec[f"{name}.weight"] = (out_f, in_f)
        spec[f"{name}.bias"] = (out_f,)
    return spec


def our_name(official: str) -> str | None:
    """This repository's name for an official key (None: dropped by name)."""
    if official.startswith(OFFICIAL_LORA_PREFIX):
        return OUR_LORA_PREFIX + official[len(OFFICIAL_LORA_PREFIX):]
    module, _, suffix = official.rpartition(".")
    if module in DROPPED:
        return None
    if module not in ADAPTER_MAP:
        raise KeyError(f"{official}: not an official AffectGPT key")
    return f"{ADAPTER_MAP[module]}.{suffix}"


def check_layout(state: dict[str, torch.Tensor], d: OfficialDims, source: str) -> None:
    """Raise naming every missing, unexpected and mis-shaped key (all of them, not the first)."""
    spec = official_spec(d)
    missing = [k for k in spec if k not in state]
    unexpected = sorted(k for k in state if k not in spec)
    bad_type = sorted(k for k in state if k in spec and not isinstance(state[k], torch.Tensor))
    shaped = [f"{k} {list(state[k].shape)} (expected {list(spec[k])})" for k in spec
              if k in state and k not in bad_type and tuple(state[k].shape) != spec[k]]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing: {_listed(missing, ', ')}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected: {_listed(unexpected, ', ')}")
    if bad_type:
        problems.append(f"not tensors: {_listed(bad_type, ', ')}")
    if shaped:
        problems.append(f"{len(shaped)} mis-shaped: {_listed(shaped, '; ')}")
    if problems:
        raise ValueError(f"{source}: not the released AffectGPT layout ({len(spec)} tensors at {d}): "
                         + " | ".join(problems))


def _listed(items: list[str], sep: str, limit: int = 24) -> str:
    """Every item up to ``limit`` (a whole layer's LoRA and more), then a count of the rest."""
    more = f"{sep}... (+{len(items) - limit} more)" if len(items) > limit else ""
    return sep.join(items[:limit]) + more


def to_ours(state: dict[str, torch.Tensor], d: OfficialDims, source: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The checked state renamed to this repository's trainable names, and the keys dropped by name."""
    check_layout(state, d, source)
    out, dropped = {}, []
    for k in official_spec(d):
        name = our_name(k)
        if name is None:
            dropped.append(k)
        else:
            out[name] = state[k].detach().to(torch.float32).contiguous()
    return out, dropped


def dims_of(model) -> OfficialDims:
    """The widths of a built ``AffectGPT`` (any device, ``meta`` included)."""
    base = model.llm.get_base_model() if hasattr(model.llm, "get_base_model") else model.llm
    c = base.config
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    return OfficialDims(llm_hidden=c.hidden_size, llm_layers=c.num_hidden_layers,
                        llm_intermediate=c.intermediate_size, llm_kv=c.num_key_value_heads * head_dim,
                        lora_r=model.cfg.llm.lora.r, vision=model.vision.out_dim, audio=model.audio.out_dim)
