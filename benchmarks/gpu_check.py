"""One GPU check: training throughput, MFU and peak memory of the mid and 7B configs, DeepSpeed
ZeRO-2 on one GPU, and single-clip inference latency of the 7B shape; random weights in the
real architectures (CLIP ViT-L/14, Whisper large-v3, Qwen2.5-7B; no downloads).

    python benchmarks/gpu_check.py --out DIR [--budget-s 420] [--peak-tflops 989] [--only KEY,...]
    python benchmarks/gpu_check.py --dry-run --out DIR      # CPU, tiny config, every code path

Prints ONE Markdown table and rewrites DIR/gpu_check.md and DIR/gpu_check.json after every row,
so a killed run leaves its finished rows. Rows run in order of importance and are reported
"skipped: budget" once --budget-s is spent; a row that runs out of GPU memory is reported as
OOM (and retried once at half the batch), never a crash.

Training rows run the training recipe's own step (``TrainRecipe._train_step`` through
``recipe_step``: Accelerate's mixed precision, the target-token normalisation, gradient
clipping, fused AdamW, the LR schedule) on micro-batches built here. Each training row:
synthetic clips (random frames in 0..1 and a few seconds of random audio), a
long random target so that every sequence has exactly ``seq`` LLM tokens, the batch on the GPU
before timing; ``warmup`` steps, then ``steps`` timed steps between ``torch.cuda.synchronize``.
A step is forward (``AffectGPT.forward``: summed target loss / target count), backward and AdamW
(fused on CUDA) over the trainable parameters, in bf16 (``--mixed-precision`` is passed as
``trainer.mixed_precision``). "EMER-length" rows draw each sample's length uniformly in
[0.5, 1.5) × seq (seeded) and run them padded per micro-batch or packed into rows of 1,024
tokens (``data.packing=true``); samples/s counts samples, tokens/s real tokens. "online": frames and audio go through
the frozen encoders every step; "cached": their features were computed once and are passed as
``video_feats``/``audio_feats``. Peak memory is ``torch.cuda.max_memory_allocated`` reset per row.

FLOP count (model FLOPs; MFU = counted FLOPs per second / the card's peak dense bf16 FLOP/s).
Per sequence of T LLM tokens of which T_tgt are targets:

- frozen decoder linears, N = every 2-D weight inside the decoder layers (q,k,v,o,gate,up,down;
  not the embedding table, not LoRA): forward 2·N·T, backward 2·N·T (activation gradients only:
  frozen weights get no weight gradient) → 4·N·T;
- LoRA, n = LoRA parameters (A and B of every adapted projection): forward 2·n·T, backward
  4·n·T (activation and weight gradients) → 6·n·T;
- attention scores and weighted sum, L layers, d = heads·head_dim: 4·L·T²·d forward (the full
  T×T product, causal masking not halved), twice that backward → 12·L·T²·d;
- output layer (frozen, vocabulary V, width h), logits at target positions only (as
  ``AffectGPT.forward`` computes them): 2·V·h·T_tgt forward + 2·V·h·T_tgt backward → 4·V·h·T_tgt;
- online rows add the frozen encoders' forward, per clip: CLIP, per frame of t = patches + 1
  tokens: 2·N_v·t + 2·N_patch·patches + 2·N_proj + 4·L_v·t²·d_v (N_v: 2-D weights but the
  positional table, the patch embedding N_patch and the output projection N_proj, used once per
  frame); Whisper, per 30-s chunk of t = 1,500 frames (or the cropped length):
  2·N_a·t + 2·N_conv1·2t + 4·L_a·t²·d_a (N_a: 2-D and conv weights but conv1, which runs at the
  2t mel frames);
- packed and variable-length rows count each sample at its own length T_i (the sums of the
  terms above over samples; attention is block-diagonal, 12·L·T_i²·d per sample); padding
  tokens are not model FLOPs and are not counted;
- not counted: adapters and fusion (≤ 0.2 % of a 7B step: they read a few hundred encoder rows
  per clip), norms, activations, softmax, the loss, the optimizer, and gradient-checkpoint
  recomputation (MFU counts model FLOPs, not hardware FLOPs). MFU is therefore a lower bound.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import random
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from affectgpt.model.llm import checkpoint_mode, set_gradient_checkpointing  # noqa: E402

CONF_MODEL = ROOT / "conf" / "model"
GIB = 1024**3

# Peak dense bf16 tensor FLOP/s (no sparsity), TFLOP/s, by a substring of torch.cuda.get_device_name.
PEAK_BF16_TFLOPS = [("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("H200", 989.0), ("GH200", 989.0),
                    ("A100", 312.0), ("L40S", 362.0), ("A10G", 70.0)]
DRY_RUN_PEAK_TFLOPS = 1.0  # nominal, so the dry run's MFU column is a number

WORDS = ("she", "looks", "down", "and", "her", "voice", "trembles", "while", "the", "man", "frowns", "smiles",
         "speaks", "quickly", "softly", "angry", "calm", "tone", "rises", "eyes", "widen", "brows", "pause",
         "because", "seems", "worried", "laughs", "sighs", "nods", "tense", "relaxed", "sad", "happy")


# ----------------------------------------------------------------------------- FLOP formula
@dataclass(frozen=True)
class LLMShape:
    matmul_params: int  # N: 2-D weights in the decoder layers (frozen base, LoRA excluded)
    lora_params: int  # n
    layers: int  # L
    attn_width: int  # d = heads · head_dim
    hidden: int  # h
    vocab: int  # V (output layer rows)


@dataclass(frozen=True)
class EncoderShape:
    token_params: int  # weights applied at every token
    extra: tuple[tuple[int, int], ...]  # (weights, positions they are applied at): conv stems, output projection
    layers: int
    width: int
    tokens: int  # per item: a frame (CLIP) or a 30-s chunk (Whisper)


def llm_shape(llm) -> LLMShape:
    """The numbers of the FLOP formula for a (peft-wrapped) causal LM."""
    base = llm.get_base_model() if hasattr(llm, "get_base_model") else llm
    c = base.config
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    decoder = base.get_decoder()
    n_mat = sum(p.numel() for name, p in decoder.layers.named_parameters() if p.ndim >= 2 and "lora_" not in name)
    n_lora = sum(p.numel() for name, p in llm.named_parameters() if "lora_" in name)
    return LLMShape(n_mat, n_lora, c.num_hidden_layers, c.num_attention_heads * head_dim, c.hidden_size,
                    base.get_output_embeddings().weight.shape[0])


def train_flops_per_sequence(s: LLMShape, tokens: int, target_tokens: int) -> float:
    """Model FLOPs of one LoRA training step on one sequence (module docstring)."""
    t = tokens
    return (4 * s.matmul_params * t + 6 * s.lora_params * t + 12 * s.layers * t * t * s.attn_width
            + 4 * s.vocab * s.hidden * target_tokens)


def encoder_shapes(model, audio_samples: int) -> list[tuple[EncoderShape, int]]:
    """(shape, items per clip) of the frozen encoders for a clip with ``audio_samples`` of audio."""
    out = []
    if model.vision is not None:
        v = model.vision.visual
        patches = v.grid_size[0] * v.grid_size[1]
        skip = ("positional_embedding", "proj", "conv1.weight")
        per_token = sum(p.numel() for n, p in v.named_parameters() if p.ndim >= 2 and n not in skip)
        extra = [(v.conv1.weight.numel(), patches)]  # the patch embedding: not at the class token
        if getattr(v, "proj", None) is not None and not v.output_tokens:
            extra.append((v.proj.numel(), 1))  # pooled output: one row per frame
        out.append((EncoderShape(per_token, tuple(extra), len(v.transformer.resblocks), v.transformer.width,
                                 patches + 1), model.vision.cfg.frames))
    if model.audio is not None:
        a, enc = model.audio, model.audio.encoder
        samples = a.effective_samples(audio_samples)
        chunk = 30 * 16000
        n_chunks = max(1, math.ceil(samples / chunk))
        frames = 1500 if a.cfg.pad_to_30s else a.num_frames(min(samples, chunk))
        per_token = sum(p.numel() for n, p in enc.named_parameters() if p.ndim >= 2 and not n.startswith("conv1."))
        extra = ((enc.conv1.weight.numel(), 2 * frames),)  # conv1 runs at every mel frame, 2 per output frame
        out.append((EncoderShape(per_token, extra, len(enc.blocks), a.out_dim, frames), n_chunks))
    return out


def encoder_forward_flops(e: EncoderShape) -> float:
    """Forward FLOPs of one item (a frame or a 30-s chunk) through a frozen encoder."""
    t = e.tokens
    return 2 * e.token_params * t + sum(2 * n * pos for n, pos in e.extra) + 4 * e.layers * t * t * e.width


def peak_tflops(device_name: str, override: float | None) -> float | None:
    """The card's peak dense bf16 TFLOP/s: --peak-tflops, else the table by device name."""
    if override:
        return override
    for key, value in PEAK_BF16_TFLOPS:
        if key in device_name:
            return value
    return None


# ----------------------------------------------------------------------------- rows
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
    decode: str = "static"  # decode rows: affectgpt.decoding mode
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


# ----------------------------------------------------------------------------- models and batches
def model_config(role: str, dry_run: bool, work: Path) -> dict:
    """The plain config dict of a shipped model config with random weights; the dry run uses the
    tiny config for every role (its tokenizer trained on a small text corpus written to work)."""
    from omegaconf import OmegaConf

    from affectgpt.model.build import to_plain

    base_role, _, kernels = role.partition("-")
    name = "tiny" if dry_run else {"7b": "affectgpt-7b", "mid": "affectgpt-mid"}[base_role]
    cfg = OmegaConf.load(CONF_MODEL / f"{name}.yaml")
    if name == "tiny":
        corpus = work / "train.jsonl"
        if not corpus.is_file():
            work.mkdir(parents=True, exist_ok=True)
            rng = random.Random(0)
            with corpus.open("w") as f:
                for i in range(40):
                    text = " ".join(rng.choice(WORDS) for _ in range(20))
                    f.write(json.dumps({"name": f"s{i}", "video": f"s{i}.mp4", "subtitle": text[:60],
                                        "description": text, "emotions": ["happy"]}) + "\n")
        cfg = OmegaConf.create({"model": cfg, "data": {"root": str(work), "train_manifest": str(corpus)}}).model
    plain = to_plain(cfg)
    plain["init"] = "random"
    plain["llm"]["kernels"] = kernels or "none"  # role "7b-liger": the 7B with model.llm.kernels=liger
    return plain


def build(role: str, dry_run: bool, work: Path, device: torch.device):
    from affectgpt.model.build import build_model

    torch.manual_seed(0)
    return build_model(model_config(role, dry_run, work), device=str(device), weights="random")


def make_items(model, n: int, seq: int, audio_seconds: float, seed: int, train: bool = True) -> list[dict]:
    """Synthetic clips: random frames in 0..1 at the encoder's size, random audio, a short
    subtitle and (training) a random target longer than ``seq`` tokens (the collator cuts it)."""
    g = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    plan = model.token_plan()
    items = []
    for i in range(n):
        item = {"name": f"clip{i}", "subtitle": " ".join(rng.choice(WORDS) for _ in range(12)), "task": "describe",
                "error": None, "frames": None, "audio": None}
        if plan.has_vision:
            item["frames"] = torch.rand(plan.frames, 3, *plan.image_size, generator=g)
        if plan.has_audio:
            item["audio"] = torch.randn(int(audio_seconds * 16000), generator=g) * 0.1
        if train:
            item["target"] = " ".join(rng.choice(WORDS) for _ in range(seq))
        items.append(item)
    return items


def make_batch(model, items: list[dict], seq: int, device: torch.device, train: bool = True) -> dict:
    """Collated batch on ``device``; training sequences are exactly ``seq`` tokens long."""
    from affectgpt.data.collate import Collator

    batch = Collator(model.tokenizer, model.token_plan(), max_length=seq, train=train)(items)
    if train and batch["input_ids"].shape[1] != seq:
        raise RuntimeError(f"synthetic batch has {batch['input_ids'].shape[1]} tokens per sequence, expected {seq}")
    return to_device(batch, device)


def to_device(batch: dict, device: torch.device) -> dict:
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            out[k] = v.to(device)
        elif isinstance(v, list) and v and all(isinstance(x, torch.Tensor) or x is None for x in v):
            out[k] = [None if x is None else x.to(device) for x in v]
        else:
            out[k] = v
    return out


@torch.no_grad()
def cached_batch(model, batch: dict, amp) -> dict:
    """The batch with frames/audio replaced by the frozen encoders' outputs, computed once."""
    with amp():
        feats = model.encode_media(batch)
    out = {k: v for k, v in batch.items() if k not in ("frames", "audio")}
    if "video" in feats:
        out["video_feats"] = feats["video"]
    if "audio" in feats:
        out["audio_feats"] = feats["audio"]
    return out


def set_grad_ckpt(model, mode, every: int = 1) -> None:
    set_gradient_checkpointing(model.llm, mode, every)


def train_mode(model) -> None:
    """Training mode for the adapters and the LLM (LoRA dropout, checkpointing); the frozen
    encoders stay in eval mode."""
    model.train()
    for enc in (model.vision, model.audio):
        if enc is not None:
            enc.eval()


# ----------------------------------------------------------------------------- timing
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / GIB if device.type == "cuda" else None


def timed_steps(step, warmup: int, steps: int, device: torch.device, seconds_left: float) -> tuple[float, float]:
    """Run ``warmup`` untimed steps, then up to ``steps`` timed ones (fewer when the remaining
    budget would not hold them, at least one); returns (seconds per step, last loss)."""
    t0 = time.perf_counter()
    loss = None
    for _ in range(warmup):
        loss = step()
    sync(device)
    per_step = (time.perf_counter() - t0) / max(1, warmup)
    steps = max(1, min(steps, int(seconds_left / max(per_step, 1e-6))))
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    sync(device)
    return (time.perf_counter() - t0) / steps, float(loss)


class Ctx:
    """What every row needs: device, precision, budget, repetition counts, the models built."""

    def __init__(self, args, device: torch.device):
        self.args, self.device, self.dry_run = args, device, args.dry_run
        self.start = time.perf_counter()
        self.models: dict[str, object] = {}
        self.peak = peak_tflops(torch.cuda.get_device_name(device) if device.type == "cuda" else "",
                                args.peak_tflops or (DRY_RUN_PEAK_TFLOPS if args.dry_run else None))

    def seconds_left(self) -> float:
        return self.args.budget_s - (time.perf_counter() - self.start)

    def amp(self):
        if self.args.mixed_precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def model(self, role: str):
        """The model of a role, built on first use; a model of another role is freed first."""
        for other in [k for k in self.models if k != role]:
            self.drop(other)
        if role not in self.models:
            work = Path(self.args.work)
            self.models[role] = build(role, self.dry_run, work, self.device)
        return self.models[role]

    def drop(self, role: str) -> None:
        self.models.pop(role, None)
        free(self.device)

    def accelerator(self, cfg):
        """One Accelerator for the run (Accelerate keeps its state per process), from the recipe's
        own ``make_accelerator``."""
        if not hasattr(self, "_accelerator"):
            from affectgpt.distributed import make_accelerator

            self._accelerator, _ = make_accelerator(cfg)
        return self._accelerator


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def sample_lengths(batch: dict) -> tuple[list[int], list[int]]:
    """Per sample: real tokens and target tokens (packed or padded batch)."""
    labels = batch["labels"][:, 1:].cpu()
    target = labels != -100
    if "segment" in batch:
        seg = batch["segment"].cpu()
        n = len(batch["names"])
        tokens = torch.bincount(seg[seg >= 0], minlength=n)
        targets = torch.bincount(seg[:, 1:][target], minlength=n)
        return tokens.tolist(), targets.tolist()
    return batch["attention_mask"].sum(1).tolist(), target.sum(1).tolist()


def fill_throughput(res: Result, ctx: Ctx, step_s: float, micro: list[dict], flops_per_step: float) -> None:
    n = sum(len(b["names"]) for b in micro)
    tokens = sum(int(b["attention_mask"].sum()) for b in micro)
    res.step_s, res.samples_s, res.tokens_s = step_s, n / step_s, tokens / step_s
    res.tflops = flops_per_step / step_s / 1e12
    res.mfu = res.tflops / ctx.peak if ctx.peak else None
    res.extra["model_tflop_per_step"] = flops_per_step / 1e12
    res.extra["samples_per_step"], res.extra["tokens_per_step"] = n, tokens
    res.extra["rows_per_step"] = sum(int(b["input_ids"].shape[0]) for b in micro)
    res.extra["row_tokens_per_step"] = sum(int(b["input_ids"].numel()) for b in micro)  # padding included


def step_flops(model, micro: list[dict], online: bool, audio_seconds: float) -> float:
    """Model FLOPs of one step: every sample at its own length (module docstring)."""
    shape = llm_shape(model.llm)
    total = 0.0
    for batch in micro:
        tokens, targets = sample_lengths(batch)
        total += sum(train_flops_per_sequence(shape, t, tt) for t, tt in zip(tokens, targets, strict=False))
        if online:
            shapes = encoder_shapes(model, int(audio_seconds * 16000))
            total += sum(encoder_forward_flops(e) * items for e, items in shapes) * len(tokens)
    return total


def emer_items(model, n: int, seq: int, audio_seconds: float, seed: int) -> list[dict]:
    """Clips whose prompt + target lengths are uniform in [0.5, 1.5) x seq (seeded), as EMER's
    descriptions vary; the target has one word per wanted token (common words are one token)."""
    from affectgpt.data.collate import Collator

    items = make_items(model, n, 1, audio_seconds, seed)
    probe = Collator(model.tokenizer, model.token_plan(), max_length=10**9)
    rng = random.Random(seed)
    for item in items:
        want = int(seq * (0.5 + rng.random()))
        prompt = len(probe.encode({**item, "target": ""})[0])
        item["target"] = " ".join(rng.choice(WORDS) for _ in range(max(1, want - prompt - 1)))
    return items


def training_setup(row: Row, ctx: Ctx):
    """The row's model in training mode and its micro-batches (frozen-encoder features precomputed when cached)."""
    from affectgpt.data.collate import Collator

    model = ctx.model(row.model)
    micro = []
    for k in range(row.accum):
        if row.lengths == "emer":
            items = emer_items(model, row.batch, row.seq, ctx.args.audio_seconds, seed=1 + k)
            cap = row.pack_length if row.packing else 10**9
            batch = to_device(Collator(model.tokenizer, model.token_plan(), max_length=cap, packing=row.packing)(items),
                              ctx.device)
        else:
            items = make_items(model, row.batch, row.seq, ctx.args.audio_seconds, seed=1 + k)
            batch = make_batch(model, items, row.seq, ctx.device)
        micro.append(cached_batch(model, batch, ctx.amp) if row.features == "cached" else batch)
    set_grad_ckpt(model, row.grad_ckpt, row.ckpt_every)
    train_mode(model)
    return model, micro


# ----------------------------------------------------------------------------- the recipe's step
def bench_recipe(model, row: Row, ctx: Ctx):
    """``TrainRecipe.around`` the already built model with the shipped trainer config at the row's
    batch, no warmup and no DeepSpeed. Call ``release_recipe`` after the row."""
    from omegaconf import OmegaConf

    from affectgpt.distributed import Parallel
    from affectgpt.training import TrainRecipe

    t = OmegaConf.load(ROOT / "conf" / "trainer" / "default.yaml")
    t.update(batch_size=row.batch, grad_accum=row.accum, mixed_precision=ctx.args.mixed_precision, warmup_steps=0,
             max_steps=10**6, deepspeed=None)
    cfg = OmegaConf.create({"trainer": t, "device": ctx.device.type, "seed": 0,
                            "output_dir": str(Path(ctx.args.work) / "recipe")})
    return TrainRecipe.around(model, cfg, Parallel(ctx.accelerator(cfg)))


def recipe_step(recipe, micro: list[dict]) -> float:
    """One optimizer step of the recipe; the step's mean target loss."""
    if not recipe._train_step(micro):
        raise RuntimeError("the recipe skipped the step: non-finite loss")
    return recipe.step_loss


def release_recipe(recipe) -> None:
    """Undo Accelerate's wrapping of the model's forward and drop the optimizer state."""
    recipe.accelerator.unwrap_model(recipe.model, keep_fp32_wrapper=False)
    recipe.optimizer.zero_grad(set_to_none=True)
    recipe.accelerator.free_memory()


def train_row(row: Row, ctx: Ctx, res: Result) -> None:
    """The training recipe's step (``recipe_step``) on the row's micro-batches."""
    model, micro = training_setup(row, ctx)
    a = ctx.args
    base = model.llm.get_base_model() if hasattr(model.llm, "get_base_model") else model.llm
    attn = base.config._attn_implementation
    if row.attn:
        base.set_attn_implementation(row.attn)
    recipe = bench_recipe(model, row, ctx)
    fake = [row.fake_oom]

    def step():
        if fake[0]:
            fake[0] = False
            raise torch.OutOfMemoryError("fake out-of-memory (--dry-run check of the OOM handling)")
        return recipe_step(recipe, micro)  # noqa: F821 - step() only runs before the `del recipe` below

    try:
        step_s, loss = timed_steps(step, a.warmup, a.steps, ctx.device, ctx.seconds_left())
    finally:
        steps_done = recipe.state["step"]  # the recipe's own counter: its step ran
        release_recipe(recipe)
        del recipe
        if row.attn:
            base.set_attn_implementation(attn)
    res.extra["attn_implementation"] = row.attn or attn
    res.loss = loss
    res.extra["recipe_steps"] = steps_done
    if row.lengths == "emer":
        res.seq = round(sum(int(b["attention_mask"].sum()) for b in micro) / sum(len(b["names"]) for b in micro))
        res.batch = row.batch * row.accum
    fill_throughput(res, ctx, step_s, micro, step_flops(model, micro, row.features == "online", a.audio_seconds))


def zero2_row(row: Row, ctx: Ctx, res: Result) -> None:
    """The same step through ``deepspeed.initialize`` with ZeRO stage 2 in one process (bf16 on
    CUDA; DeepSpeed casts the model, so the model is dropped afterwards)."""
    for k, v in {
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29511",
    }.items():
        os.environ.setdefault(k, v)
    import deepspeed

    if ctx.device.type == "cpu":
        # DeepSpeed's CPU backend compiles a shared-memory all-reduce (20-120 s of C++) that only
        # several CPU processes use; one process needs none. Its ops table is meant to be edited.
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    model, (batch,) = training_setup(row, ctx)
    a = ctx.args
    bf16 = ctx.device.type == "cuda"
    config = {
        "train_micro_batch_size_per_gpu": row.batch,
        "gradient_accumulation_steps": 1,
        "zero_optimization": {"stage": 2},
        "optimizer": {"type": "AdamW", "params": {"lr": 1e-5, "torch_adam": True}},
        "bf16": {"enabled": bf16},
        "steps_per_print": 10**9,
    }
    engine, *_ = deepspeed.initialize(model=model, model_parameters=[p for p in model.parameters() if p.requires_grad],
                                      config=config)
    ctx.models.pop(row.model, None)  # cast and hooked by DeepSpeed: not reused by later rows

    def step():
        loss_sum, n = engine(batch)
        loss = loss_sum / n
        engine.backward(loss)
        engine.step()
        return loss.detach()

    flops = step_flops(model, [batch], row.features == "online", a.audio_seconds)
    try:
        step_s, loss = timed_steps(step, a.warmup, a.steps, ctx.device, ctx.seconds_left())
        res.extra.update(zero_stage=engine.zero_optimization_stage(), bf16=bf16)
    finally:
        engine.destroy()
    res.loss = loss
    fill_throughput(res, ctx, step_s, [batch], flops)


@torch.no_grad()
def infer_row(row: Row, ctx: Ctx, res: Result) -> None:
    """One clip: encode (frozen encoders + adapters + splice), prefill (LLM forward over the
    prompt), generation of exactly ``new_tokens`` greedy tokens; medians over repeats."""
    model = ctx.model(row.model)
    a = ctx.args
    model.eval()
    set_grad_ckpt(model, False)
    if row.merged and hasattr(model.llm, "merge_and_unload"):
        model.llm = model.llm.merge_and_unload()
    batch = make_batch(
        model, make_items(model, 1, 0, a.audio_seconds, seed=2, train=False), 4096, ctx.device, train=False
    )
    mask = batch["attention_mask"]
    tok = model.tokenizer
    gen_kwargs = dict(
        max_new_tokens=a.new_tokens,
        min_new_tokens=a.new_tokens,
        do_sample=False,
        num_beams=1,
        use_cache=True,
        temperature=None,
        top_p=None,
        top_k=None,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )

    def timed(fn):
        sync(ctx.device)
        t0 = time.perf_counter()
        out = fn()
        sync(ctx.device)
        return time.perf_counter() - t0, out

    def end_to_end():
        with ctx.amp():
            embeds = model.embed(batch, model.encode_media(batch))
            ids = model.llm.generate(inputs_embeds=embeds, attention_mask=mask, **gen_kwargs)
        return ids, tok.batch_decode(ids, skip_special_tokens=True)

    one_token = {**gen_kwargs, "max_new_tokens": 1, "min_new_tokens": 1}
    reset_peak(ctx.device)
    runs = []
    for i in range(1 + a.infer_repeats):  # the first is warmup
        with ctx.amp():
            enc_s, embeds = timed(lambda: model.embed(batch, model.encode_media(batch)))
            # B023: each lambda is called at once by timed(), inside this iteration
            pre_s, _ = timed(
                lambda: model.llm(inputs_embeds=embeds, attention_mask=mask, use_cache=True, logits_to_keep=1)  # noqa: B023
            )
            gen1_s, _ = timed(
                lambda: model.llm.generate(inputs_embeds=embeds, attention_mask=mask, **one_token)  # noqa: B023
            )
            gen_s, ids = timed(
                lambda: model.llm.generate(inputs_embeds=embeds, attention_mask=mask, **gen_kwargs)  # noqa: B023
            )
        e2e_s, (ids2, _texts) = timed(end_to_end)
        if ids.shape[-1] != a.new_tokens or ids2.shape[-1] != a.new_tokens:
            raise RuntimeError(f"generate returned {ids.shape[-1]} tokens, expected {a.new_tokens}")
        if i:
            runs.append((enc_s, pre_s, gen1_s, gen_s, e2e_s))
    enc_s, pre_s, gen1_s, gen_s, e2e_s = (sorted(col)[len(col) // 2] for col in zip(*runs, strict=True))
    # Decode rate: the tokens after the first, over generate(N) minus generate(1) (prefill + first token).
    decode_tps = (a.new_tokens - 1) / (gen_s - gen1_s) if gen_s > gen1_s else None
    res.batch, res.seq = 1, int(mask.shape[1])
    res.step_s, res.samples_s, res.tokens_s = e2e_s, 1 / e2e_s, decode_tps
    res.extra.update(
        encode_ms=enc_s * 1e3,
        prefill_ms=pre_s * 1e3,
        prompt_tokens=int(mask.sum()),
        generate_1_s=gen1_s,
        generate_s=gen_s,
        new_tokens=a.new_tokens,
        decode_tokens_s=decode_tps,
        end_to_end_s=e2e_s,
    )


def exact_greedy(tok, n: int) -> dict:
    """``generate`` kwargs: greedy, exactly ``n`` new tokens (EOS banned until then)."""
    return dict(max_new_tokens=n, min_new_tokens=n, do_sample=False, num_beams=1, temperature=None, top_p=None,
                top_k=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)


def merged_model(row: Row, ctx: Ctx):
    """The role's model in eval mode, LoRA merged when the row says so (irreversible)."""
    model = ctx.model(row.model)
    model.eval()
    set_grad_ckpt(model, False)
    if row.merged and hasattr(model.llm, "merge_and_unload"):
        model.llm = model.llm.merge_and_unload()
    return model


@torch.no_grad()
def decode_row(row: Row, ctx: Ctx, res: Result) -> None:
    """One clip, ``new_tokens`` greedy tokens (EOS banned) through ``affectgpt.decoding`` in
    ``row.decode`` mode and through transformers' ``generate``; tokens/s after the first token
    (the prefill excluded), medians over repeats after a warm-up call (which compiles or captures;
    its time is reported). ``identical``: the two paths' token ids are equal on every repeat."""
    from affectgpt.decoding import greedy_static

    model = merged_model(row, ctx)
    a = ctx.args
    items = make_items(model, 1, 0, a.audio_seconds, seed=2, train=False)
    batch = make_batch(model, items, 4096, ctx.device, train=False)
    tok = model.tokenizer
    with ctx.amp():
        embeds = model.embed(batch, model.encode_media(batch))
    gen_kwargs = exact_greedy(tok, a.new_tokens)
    reset_peak(ctx.device)
    t0 = time.perf_counter()
    with ctx.amp():
        greedy_static(model, embeds, a.new_tokens, row.decode, ignore_eos=True)  # warm-up: compile / capture
    warm_s = time.perf_counter() - t0
    rates, prefill, identical = [], [], True
    for _ in range(a.infer_repeats):
        with ctx.amp():
            ids, timing = greedy_static(model, embeds, a.new_tokens, row.decode, ignore_eos=True)
            plain = model.llm.generate(inputs_embeds=embeds, attention_mask=batch["attention_mask"], **gen_kwargs)
        identical &= ids == plain[0].tolist()
        rates.append(timing["tokens_per_s"])
        prefill.append(timing["prefill_s"])
    rate, pre = sorted(rates)[len(rates) // 2], sorted(prefill)[len(prefill) // 2]
    res.batch, res.seq = 1, int(batch["attention_mask"].shape[1])
    res.step_s = pre + (a.new_tokens - 1) / rate
    res.samples_s, res.tokens_s = 1 / res.step_s, rate
    res.extra.update(decode=row.decode, new_tokens=a.new_tokens, prefill_ms=pre * 1e3, warmup_s=warm_s,
                     identical=bool(identical), decode_tokens_s=rate)


@torch.no_grad()
def batch_decode_row(row: Row, ctx: Ctx, res: Result) -> None:
    """Manifest decoding as ``run_manifest`` does it (left-padded batch, frozen encoders, splice,
    transformers' ``generate``), ``new_tokens`` tokens per clip (EOS banned): clips/s end to end
    and generated tokens/s over the batch; medians over repeats after one warm-up."""
    model = merged_model(row, ctx)
    a = ctx.args
    batch = make_batch(model, make_items(model, row.batch, 0, a.audio_seconds, seed=3, train=False), 4096, ctx.device,
                       train=False)
    gen_kwargs = exact_greedy(model.tokenizer, a.new_tokens)

    def run():
        sync(ctx.device)
        t0 = time.perf_counter()
        with ctx.amp():
            embeds = model.embed(batch, model.encode_media(batch))
            ids = model.llm.generate(inputs_embeds=embeds, attention_mask=batch["attention_mask"], **gen_kwargs)
        sync(ctx.device)
        if ids.shape != (row.batch, a.new_tokens):
            raise RuntimeError(f"generate returned {tuple(ids.shape)}, expected {(row.batch, a.new_tokens)}")
        return time.perf_counter() - t0

    reset_peak(ctx.device)
    run()
    secs = sorted(run() for _ in range(a.infer_repeats))[a.infer_repeats // 2]
    res.batch, res.seq = row.batch, int(batch["attention_mask"].shape[1])
    res.step_s, res.samples_s, res.tokens_s = secs, row.batch / secs, row.batch * a.new_tokens / secs
    res.extra.update(new_tokens=a.new_tokens, clips_s=row.batch / secs)


RUNNERS = {"train": train_row, "zero2": zero2_row, "infer": infer_row, "decode": decode_row,
           "batch-decode": batch_decode_row}


def run_row(row: Row, ctx: Ctx) -> Result:
    """One row. Out of memory → status "OOM"; any other exception → "error: ..." with its
    traceback on stderr (one broken row must not cost the rest of a GPU lease); no budget left
    → "skipped: budget"."""
    res = Result(row.key, describe(row), batch=row.batch, seq=row.seq)
    if ctx.seconds_left() <= 0:
        res.status = "skipped: budget"
        return res
    if row.kernels != "none":
        from affectgpt.model.kernels import liger_unavailable

        why = liger_unavailable(ctx.device)
        if why:
            res.status = f"skipped: {why}"
            return res
    failure = None
    reset_peak(ctx.device)
    try:
        RUNNERS[row.kind](row, ctx, res)
    except torch.OutOfMemoryError as e:
        failure = ("OOM", str(e).splitlines()[0][:200] if str(e) else "out of memory")
    except Exception as e:  # noqa: BLE001  reported in the table, the run goes on
        traceback.print_exc()
        failure = (f"error: {type(e).__name__}", str(e).splitlines()[0][:200] if str(e) else "")
    res.peak_gib = peak_gib(ctx.device)
    if failure is not None:
        # The traceback that held the row's tensors is gone here; drop grads and cached blocks.
        for m in ctx.models.values():
            m.zero_grad(set_to_none=True)
        free(ctx.device)
        res.status, res.extra["error"] = failure
        res.step_s = res.samples_s = res.tokens_s = res.tflops = res.mfu = None
    return res


# ----------------------------------------------------------------------------- report
def fmt(x, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def format_table(results: list[Result], header: dict) -> str:
    lines = [f"GPU check: {header['device']}; torch {header['torch']}, transformers {header['transformers']}; "
             f"peak bf16 {fmt(header['peak_tflops'], '.0f')} TFLOP/s; mixed precision {header['mixed_precision']}"
             + ("; DRY RUN (CPU, tiny config)" if header["dry_run"] else ""), "",
             "| row | what | batch x seq | step s | samples/s | tokens/s | TFLOP/s | MFU | peak GiB | status / notes |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        note = r.status
        if r.key.endswith("infer") and r.status == "ok":
            e = r.extra
            note = (
                f"encode {e['encode_ms']:.0f} ms, prefill {e['prefill_ms']:.0f} ms ({e['prompt_tokens']} tokens), "
                f"decode {fmt(e['decode_tokens_s'], '.1f')} tok/s, "
                f"{e['new_tokens']} tokens end to end {e['end_to_end_s']:.2f} s"
            )
        elif r.status == "ok" and "identical" in r.extra:
            e = r.extra
            note = (f"decode {e['decode_tokens_s']:.1f} tok/s, prefill {e['prefill_ms']:.0f} ms, "
                    f"warm-up {e['warmup_s']:.1f} s, greedy ids {'identical' if e['identical'] else 'DIFFER'} "
                    "to generate()" + (f"; {e['note']}" if e.get("note") else ""))
        elif r.status == "ok" and "clips_s" in r.extra:
            note = f"{r.extra['clips_s']:.2f} clips/s, {r.extra['new_tokens']} tokens per clip"
        elif r.status == "ok" and r.extra.get("note"):
            note = r.extra["note"]
        if r.status == "ok" and "-emer-" in r.key:
            e = r.extra
            pad = 100 * (1 - e["tokens_per_step"] / e["row_tokens_per_step"])
            note += f"; {e['samples_per_step']} samples in {e['rows_per_step']} rows, {pad:.0f}% padding"
        elif r.status == "OOM":
            note = f"OOM at batch {r.batch}"
        elif r.status.startswith("error"):
            note = f"{r.status}: {r.extra.get('error', '')}".replace("|", "/")
        mfu = None if r.mfu is None else 100 * r.mfu
        lines.append(
            f"| {r.key} | {r.desc} | {r.batch} x {r.seq} | {fmt(r.step_s, '.3f')} | {fmt(r.samples_s, '.2f')} | "
            f"{fmt(r.tokens_s, ',.0f')} | {fmt(r.tflops, '.1f')} | {fmt(mfu, '.1f')}{'%' if mfu is not None else ''} | "
            f"{fmt(r.peak_gib, '.1f')} | {note} |"
        )
    return "\n".join(lines)


def write_report(out: Path, results: list[Result], header: dict) -> str:
    table = format_table(results, header)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.md").write_text(table + "\n")
    doc = {**header, "flop_formula": __doc__.split("FLOP count")[1].strip(), "rows": [asdict(r) for r in results]}
    (out / "gpu_check.json").write_text(json.dumps(doc, indent=2) + "\n")
    return table


def environment(device: torch.device, ctx: Ctx, args) -> dict:
    import transformers

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    mem = torch.cuda.get_device_properties(device).total_memory / GIB if device.type == "cuda" else None
    from importlib.metadata import PackageNotFoundError, version

    packages = {}
    for dist in ("peft", "accelerate", "deepspeed", "open_clip_torch", "openai-whisper"):
        try:
            packages[dist] = version(dist)
        except PackageNotFoundError:
            packages[dist] = None
    return {
        "device": name,
        "device_memory_gib": mem,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "packages": packages,
        "peak_tflops": ctx.peak,
        "mixed_precision": args.mixed_precision,
        "dry_run": args.dry_run,
        "budget_s": args.budget_s,
        "warmup": args.warmup,
        "steps": args.steps,
        "audio_seconds": args.audio_seconds,
    }


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", required=True, help="folder for gpu_check.md and gpu_check.json")
    p.add_argument("--dry-run", action="store_true", help="CPU, float32, tiny config and shapes: every code path")
    p.add_argument("--budget-s", type=float, default=420.0, help="rows after this many seconds are skipped")
    p.add_argument("--peak-tflops", type=float, default=None, help="peak dense bf16 TFLOP/s (default: by device name)")
    p.add_argument(
        "--mixed-precision", choices=["bf16", "no"], default=None, help="default: bf16 on CUDA, no in the dry run"
    )
    p.add_argument("--warmup", type=int, default=None, help="untimed steps per row (default 2; dry run 0)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per row (default 5; dry run 1)")
    p.add_argument("--audio-seconds", type=float, default=None, help="synthetic audio per clip (default 6; dry run 1)")
    p.add_argument("--new-tokens", type=int, default=None, help="inference: generated tokens (default 100; dry run 8)")
    p.add_argument("--infer-repeats", type=int, default=None, help="inference: timed repeats (default 3; dry run 1)")
    p.add_argument("--only", default=None, help="comma-separated row keys to run (default: all)")
    p.add_argument("--work", default=None, help="dry run: folder for the tiny weights (default: a temporary folder)")
    args = p.parse_args(argv)
    dry = args.dry_run
    defaults = {"mixed_precision": "no" if dry else "bf16", "warmup": 0 if dry else 2, "steps": 1 if dry else 5,
                "audio_seconds": 1.0 if dry else 6.0, "new_tokens": 8 if dry else 100, "infer_repeats": 1 if dry else 3}
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    args.work = args.work or tempfile.mkdtemp(prefix="gpu_check_")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.dry_run:
        device = torch.device("cpu")
    elif torch.cuda.is_available():
        device = torch.device("cuda", 0)
    else:
        print("gpu_check: no CUDA device; use --dry-run for the CPU check", file=sys.stderr)
        return 2
    rows = dry_rows() if args.dry_run else gpu_rows()
    if args.only:
        keys = args.only.split(",")
        unknown = sorted(set(keys) - {r.key for r in rows})
        if unknown:
            print(f"gpu_check: unknown row keys {unknown}; rows are {[r.key for r in rows]}", file=sys.stderr)
            return 2
        rows = [r for r in rows if r.key in keys]
    ctx = Ctx(args, device)
    header = environment(device, ctx, args)
    out = Path(args.out)
    results: list[Result] = []
    queue = list(rows)
    while queue:
        row = queue.pop(0)
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):  # libraries' prints (DeepSpeed) stay off the table
            res = run_row(row, ctx)
        res.extra["row_wall_s"] = time.perf_counter() - t0
        if row.note:
            res.extra["note"] = row.note
        results.append(res)
        if res.status == "OOM" and row.batch > 1 and row.kind != "infer":
            queue.insert(0, replace(row, key=f"{row.key}-b{row.batch // 2}", batch=row.batch // 2, fake_oom=False))
        header["elapsed_s"] = time.perf_counter() - ctx.start
        write_report(out, results, header)
        print(f"[{header['elapsed_s']:6.1f}s] {res.key}: {res.status} ({res.extra['row_wall_s']:.1f}s)",
              file=sys.stderr, flush=True)
    print(write_report(out, results, header))
    return 0


if __name__ == "__main__":
    sys.exit(main())
