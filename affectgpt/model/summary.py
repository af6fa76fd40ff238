"""Parameter counts and a training-memory estimate for any model config, built on the ``meta``
device (no weights, no network, no memory).

    python -m affectgpt.apps.summary model=affectgpt-7b [tokens=2048] [target_tokens=512] [json=true]
    python -m affectgpt.apps.summary model=affectgpt-mid model.llm.lora.r=8

Memory estimate for one training micro-batch of ``T`` tokens of which ``T_tgt`` are targets,
LLM with ``L`` layers, width ``h``, key/value width ``h_kv``, MLP width ``I``, vocabulary ``V``,
LoRA rank ``r`` on ``n_lora`` projections per layer (dropout ``p``); activations in bf16:

- weights: every parameter at its configured dtype (``element_size``: 2 bytes for bf16).
- trainable state: 16 bytes per trainable parameter = fp32 weight (4) + fp32 gradient (4) +
  AdamW's two fp32 moments (8). peft keeps LoRA weights in fp32 over a bf16 base.
- activations kept for backward, per token per decoder layer (no checkpointing):
  ``A = 2·(6h + 2·h_kv + 4I + n_lora·r) + 8·h + [p > 0]·3·(6h + I)`` bytes:
  the normed inputs of attention and MLP, q/k/v after RoPE, the attention output, the MLP's
  gate, up, SiLU(gate) and product (bf16, 2 bytes each); the fp32 copies two RMSNorms keep
  (8h); LoRA's rank-r intermediates; with dropout, each LoRA input's dropped copy and mask.
  Frozen linears need no saved input for their own (absent) weight gradient.
- with gradient checkpointing: each layer keeps only its input (2h bytes per token) and one
  layer at a time is recomputed during backward: ``L·2h·T + A·T``; without: ``L·A·T``.
- logits at target positions only (as ``AffectGPT.forward`` computes them): bf16 logits, their
  fp32 copy and the saved log-softmax: ``10·V`` bytes per target token.
- not counted: frozen encoders (run under ``no_grad``, or cached), adapter activations (a few
  tokens), the CUDA context and allocator fragmentation (budget ~1-2 GB more).
It is an estimate of the order of magnitude; benchmarks/ holds measured peaks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from affectgpt.data.splits import load_split

GIB = 1024**3


@dataclass
class ModuleRow:
    module: str
    total: int
    trainable: int
    bytes: int  # weights at their dtype


def parameter_rows(model) -> list[ModuleRow]:
    """Per top-level module (the LLM split into frozen base and trainable LoRA) plus a total row."""
    rows: list[ModuleRow] = []
    for name in ("vision", "audio", "video_adapter", "audio_adapter", "fusion"):
        module = getattr(model, name, None)
        if module is None:
            continue
        ps = list(module.parameters())
        rows.append(ModuleRow(name, sum(p.numel() for p in ps), sum(p.numel() for p in ps if p.requires_grad),
                              sum(p.numel() * p.element_size() for p in ps)))
    base = [p for p in model.llm.parameters() if not p.requires_grad]
    lora = [p for p in model.llm.parameters() if p.requires_grad]
    rows.append(
        ModuleRow("llm (frozen base)", sum(p.numel() for p in base), 0, sum(p.numel() * p.element_size() for p in base))
    )
    rows.append(ModuleRow("llm (LoRA, trainable)", sum(p.numel() for p in lora), sum(p.numel() for p in lora),
                          sum(p.numel() * p.element_size() for p in lora)))
    rows.append(
        ModuleRow("total", sum(r.total for r in rows), sum(r.trainable for r in rows), sum(r.bytes for r in rows))
    )
    return rows


def llm_dims(model) -> dict:
    """The decoder's shape numbers the activation formula needs."""
    llm = model.llm.get_base_model() if hasattr(model.llm, "get_base_model") else model.llm
    c = llm.config
    heads = c.num_attention_heads
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // heads
    lora = model.cfg.llm.lora
    return {
        "layers": c.num_hidden_layers,
        "hidden": c.hidden_size,
        "kv": getattr(c, "num_key_value_heads", heads) * head_dim,
        "intermediate": c.intermediate_size,
        "vocab": llm.get_output_embeddings().weight.shape[0],
        "lora_r": lora.r if lora.enabled else 0,
        "lora_modules": len(lora.target_modules) if lora.enabled else 0,
        "lora_dropout": lora.dropout if lora.enabled else 0.0,
    }


def activation_bytes_per_token_layer(d: dict) -> int:
    """``A`` of the module docstring: bytes kept per token per decoder layer without checkpointing."""
    h, kv, i = d["hidden"], d["kv"], d["intermediate"]
    a = 2 * (6 * h + 2 * kv + 4 * i + d["lora_modules"] * d["lora_r"]) + 8 * h
    if d["lora_dropout"] > 0:
        a += 3 * (6 * h + i)
    return a


def memory_estimate(model, tokens: int = 2048, target_tokens: int = 512) -> dict:
    """Training memory in bytes for one micro-batch of ``tokens`` (``target_tokens`` of them
    targets); formulas in the module docstring."""
    rows = parameter_rows(model)
    total = rows[-1]
    d = llm_dims(model)
    a = activation_bytes_per_token_layer(d)
    weights = total.bytes
    state = 16 * total.trainable
    logits = 10 * d["vocab"] * target_tokens
    act_plain = d["layers"] * a * tokens
    act_ckpt = d["layers"] * 2 * d["hidden"] * tokens + a * tokens
    return {
        "tokens": tokens, "target_tokens": target_tokens, "llm": d,
        "weights": weights, "trainable_state": state,
        "activation_per_token_no_ckpt": d["layers"] * a, "activation_per_token_ckpt": d["layers"] * 2 * d["hidden"] + a,
        "logits": logits,
        "total_no_ckpt": weights + state + act_plain + logits,
        "total_ckpt": weights + state + act_ckpt + logits,
        "gradient_checkpointing": bool(model.cfg.llm.gradient_checkpointing),
    }


def format_summary(name: str, rows: list[ModuleRow], mem: dict) -> str:
    out = [f"model {name} (built on meta, random init)", "",
           f"| {'module':<24} | {'parameters':>15} | {'trainable':>13} | {'weights GiB':>11} |",
           f"|{'-' * 26}|{'-' * 17}|{'-' * 15}|{'-' * 13}|"]
    for r in rows:
        out.append(f"| {r.module:<24} | {r.total:>15,} | {r.trainable:>13,} | {r.bytes / GIB:>11.3f} |")
    d = mem["llm"]
    used = "on" if mem["gradient_checkpointing"] else "off"
    out += ["", f"training memory, one micro-batch of {mem['tokens']} tokens ({mem['target_tokens']} targets), "
                f"LLM L={d['layers']} h={d['hidden']} I={d['intermediate']} V={d['vocab']}:",
            f"  weights                 {mem['weights'] / GIB:8.2f} GiB",
            f"  trainable state (16 B)  {mem['trainable_state'] / GIB:8.2f} GiB",
            f"  activations / token     {mem['activation_per_token_no_ckpt'] / 2**20:8.2f} MiB without checkpointing, "
            f"{mem['activation_per_token_ckpt'] / 2**20:.2f} MiB with",
            f"  target logits           {mem['logits'] / GIB:8.2f} GiB",
            f"  total                   {mem['total_no_ckpt'] / GIB:8.2f} GiB without checkpointing, "
            f"{mem['total_ckpt'] / GIB:.2f} GiB with (config: {used})"]
    return "\n".join(out)


def summarize(cfg, tokens: int = 2048, target_tokens: int = 512) -> tuple[list[ModuleRow], dict, object]:
    """Build ``cfg.model`` on meta with random weights; the tiny config first ensures its local
    assets (and the synthetic dataset its tokenizer is trained on)."""
    # lazy: apps.summary rejects a bad config before torch loads
    from affectgpt.model.build import build_model
    from affectgpt.model.config import to_plain

    plain = to_plain(cfg.model)
    corpus = plain.get("tiny_corpus")
    if (
        plain.get("tiny_assets")
        and plain.get("tiny_tokenizer", "bpe") == "bpe"
        and not (corpus and Path(corpus).is_file())
    ):
        load_split(cfg.data, "train")
    model = build_model(cfg.model, device="meta", weights="random")
    return parameter_rows(model), memory_estimate(model, tokens, target_tokens), model


if __name__ == "__main__":  # the command line moved to affectgpt/apps; say so instead of exiting 0 silently
    import sys

    from affectgpt.core.errors import moved_command

    sys.exit(moved_command("affectgpt.model.summary"))
