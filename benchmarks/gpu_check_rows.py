"""The rows of the GPU check (``benchmarks/gpu_check.py``): what each measures, in order of importance,
and their tiny-shape versions for the CPU dry run."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from affectgpt.model.llm import checkpoint_mode


@dataclass
class Row:
    key: str
    model: str  # role: "7b" | "mid" (tiny in the dry run)
    kind: str  # "train" | "zero2" | "infer"
    features: str = "cached"  # "cached" | "online"
    grad_ckpt: bool = False
    batch: int = 8
    seq: int = 1024
    note: str = ""
    fake_oom: bool = False  # dry run: raise torch.OutOfMemoryError mid-step to check the handling
    merged: bool = False  # inference with LoRA merged into the base weights (as a merged export runs); irreversible
    ckpt_every: int = 1  # gradient checkpointing on every k-th decoder block
    lengths: str = "fixed"  # fixed: every sample exactly seq tokens | emer: uniform in [0.5, 1.5) x seq
    packing: bool = False  # rows of pack_length tokens holding several samples (data.packing=true)
    pack_length: int = 1024
    accum: int = 1  # micro-batches per optimizer step
    kernels: str = "none"  # model.llm.kernels
    decode: str = "static"  # decode rows: affectgpt.runtime.decoding mode
    attn: str = ""  # training rows: attention implementation for this row only (transformers' set_attn_implementation)


@dataclass
class Result:
    key: str
    desc: str
    status: str = "ok"  # ok | OOM | skipped: budget | error: ...
    batch: int = 0
    seq: int = 0
    step_s: float | None = None
    samples_s: float | None = None
    tokens_s: float | None = None
    tflops: float | None = None
    mfu: float | None = None
    peak_gib: float | None = None
    loss: float | None = None
    extra: dict = field(default_factory=dict)


def gpu_rows() -> list[Row]:
    """The real run, most important first; rows of one model are adjacent (one build each)."""
    return [
        Row("7b-cached-nockpt-b8", "7b", "train", "cached", False, 8, 1024, "MFU target >= 45%"),
        Row("7b-emer-packed", "7b", "train", "cached", False, 16, 320, "target >= 40 samples/s", lengths="emer",
            packing=True, accum=2),
        Row("7b-emer-padded", "7b", "train", "cached", False, 16, 320, "the same samples, padded", lengths="emer",
            accum=2),
        Row("7b-emer-packed-flex", "7b", "train", "cached", False, 16, 320, "packed, flex attention", lengths="emer",
            packing=True, accum=2, attn="flex_attention"),
        Row("7b-cached-ckpt", "7b", "train", "cached", True, 8, 1024, "full checkpointing"),
        Row("7b-ckpt-mlp-b8", "7b", "train", "cached", "mlp", 8, 1024, "selective: MLP only"),
        Row("7b-ckpt-half-b8", "7b", "train", "cached", True, 8, 1024, "selective: every other block", ckpt_every=2),
        Row("7b-online-ckpt", "7b", "train", "online", True, 8, 1024),
        Row("7b-infer", "7b", "infer", "online", note="100 new tokens, target < 3 s end to end"),
        # Merging is irreversible here: every later 7B row decodes with the merged model.
        Row("7b-infer-merged", "7b", "infer", "online", merged=True),
        Row("7b-decode-graph", "7b", "decode", merged=True, batch=1, note="target >= 150 tokens/s, same greedy ids",
            decode="graph"),
        Row("7b-decode-compile", "7b", "decode", merged=True, batch=1, note="target >= 150 tokens/s, same greedy ids",
            decode="compile"),
        Row("7b-decode-static", "7b", "decode", merged=True, batch=1, decode="static"),
        Row("7b-batch-decode-b1", "7b", "batch-decode", merged=True, batch=1),
        Row("7b-batch-decode-b8", "7b", "batch-decode", merged=True, batch=8),
        Row("7b-batch-decode-b32", "7b", "batch-decode", merged=True, batch=32),
        Row("7b-liger-nockpt-b8", "7b-liger", "train", "cached", False, 8, 1024, "vs 7b-cached-nockpt-b8",
            kernels="liger"),
        Row("7b-liger-emer-packed", "7b-liger", "train", "cached", False, 16, 320, "vs 7b-emer-packed", lengths="emer",
            packing=True, accum=2, kernels="liger"),
        Row("mid-online", "mid", "train", "online", False, 8, 1024),
        Row("mid-cached", "mid", "train", "cached", False, 8, 1024, "target >= 2x mid-online"),
        Row("mid-zero2", "mid", "zero2", "cached", False, 8, 1024, "DeepSpeed ZeRO-2, one process"),
        Row("mid-cached-ckpt", "mid", "train", "cached", True, 8, 1024),
    ]


def dry_rows() -> list[Row]:
    """The same rows on the tiny config with tiny shapes (CPU: decode rows run the eager static
    path, liger rows are refused), plus a forced-OOM row."""
    rows = []
    for r in gpu_rows():
        small = replace(r, batch=min(r.batch, 2), seq=112 if r.seq < 1024 else 128, pack_length=256)
        if r.kind == "decode":
            small = replace(small, decode="static")
        if r.attn:  # flex attention compiles C++ on CPU; eager rehearses the switch
            small = replace(small, attn="eager")
        rows.append(small)
    return rows + [
        Row("oom-check", "mid", "train", "cached", False, 2, 128, "forced OOM, then retried at half batch", True)
    ]


def describe(r: Row) -> str:
    model = {"7b": "7B", "mid": "mid", "7b-liger": "7B liger"}[r.model]
    if r.kind == "infer":
        return f"{model} inference, 1 clip" + (", LoRA merged" if r.merged else "")
    if r.kind == "decode":
        return f"{model} merged, 1 clip, decode={r.decode}"
    if r.kind == "batch-decode":
        return f"{model} merged, manifest decoding, batch {r.batch}"
    mode = checkpoint_mode(r.grad_ckpt)
    ckpt = {"none": "no ckpt", "full": "ckpt", "mlp": "ckpt mlp"}[mode]
    ckpt += f" 1/{r.ckpt_every}" if r.ckpt_every > 1 else ""
    engine = "ZeRO-2" if r.kind == "zero2" else "LoRA step"
    layout = (", EMER lengths " + ("packed" if r.packing else "padded")) if r.lengths == "emer" else ""
    layout += f", {r.attn}" if r.attn else ""
    return f"{model} {engine}, {r.features}, {ckpt}{layout}" + (f" x{r.accum}" if r.accum > 1 else "")
