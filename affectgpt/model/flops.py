"""Model FLOPs of a training step and MFU (model FLOPs utilisation), nanoGPT's habit: one formula
in the library, used by the training log and by ``benchmarks/gpu_check.py``.

MFU = counted model FLOPs per second / the card's peak dense bf16 FLOP/s.
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
- batches with raw media (online encoders) add the frozen encoders' forward, per clip: CLIP, per
  frame of t = patches + 1 tokens: 2·N_v·t + 2·N_patch·patches + 2·N_proj + 4·L_v·t²·d_v (N_v: 2-D
  weights but the positional table, the patch embedding N_patch and the output projection N_proj,
  used once per frame); Whisper, per 30-s chunk of t = 1,500 frames (or the cropped length):
  2·N_a·t + 2·N_conv1·2t + 4·L_a·t²·d_a (N_a: 2-D and conv weights but conv1, which runs at the
  2t mel frames);
- packed and variable-length batches count each sample at its own length T_i (the sums of the
  terms above over samples; attention is block-diagonal, 12·L·T_i²·d per sample); padding
  tokens are not model FLOPs and are not counted;
- not counted: adapters and fusion (≤ 0.2 % of a 7B step: they read a few hundred encoder rows
  per clip), norms, activations, softmax, the loss, the optimizer, and gradient-checkpoint
  recomputation (MFU counts model FLOPs, not hardware FLOPs). MFU is therefore a lower bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from affectgpt.core.plan import IGNORE_INDEX, SAMPLE_RATE

# Peak dense bf16 tensor FLOP/s (no sparsity), TFLOP/s, by a substring of torch.cuda.get_device_name.
PEAK_BF16_TFLOPS = [("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("H200", 989.0), ("GH200", 989.0),
                    ("A100", 312.0), ("L40S", 362.0), ("A10G", 70.0)]


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
    n_mat = sum(_numel(p) for name, p in decoder.layers.named_parameters() if _ndim(p) >= 2 and "lora_" not in name)
    n_lora = sum(_numel(p) for name, p in llm.named_parameters() if "lora_" in name)
    return LLMShape(n_mat, n_lora, c.num_hidden_layers, c.num_attention_heads * head_dim, c.hidden_size,
                    _shape(base.get_output_embeddings().weight)[0])


# DeepSpeed ZeRO-3 partitions parameters to empty tensors and keeps the full shape in ds_shape.
def _shape(p) -> tuple[int, ...]:
    return tuple(getattr(p, "ds_shape", p.shape))


def _numel(p) -> int:
    return math.prod(_shape(p))


def _ndim(p) -> int:
    return len(_shape(p))


def train_flops_per_sequence(s: LLMShape, tokens: int, target_tokens: int) -> float:
    """Model FLOPs of one LoRA training step on one sequence (module docstring)."""
    t = tokens
    return (4 * s.matmul_params * t + 6 * s.lora_params * t + 12 * s.layers * t * t * s.attn_width
            + 4 * s.vocab * s.hidden * target_tokens)


def encoder_shapes(model, audio_samples: int | None, video: bool = True) -> list[tuple[EncoderShape, int]]:
    """(shape, items per clip) of the frozen encoders for a clip with ``audio_samples`` of audio
    (None: no audio) and, when ``video``, frames."""
    out = []
    if model.vision is not None and video:
        v = model.vision.visual
        patches = v.grid_size[0] * v.grid_size[1]
        skip = ("positional_embedding", "proj", "conv1.weight")
        per_token = sum(p.numel() for n, p in v.named_parameters() if p.ndim >= 2 and n not in skip)
        extra = [(v.conv1.weight.numel(), patches)]  # the patch embedding: not at the class token
        if getattr(v, "proj", None) is not None and not v.output_tokens:
            extra.append((v.proj.numel(), 1))  # pooled output: one row per frame
        out.append((EncoderShape(per_token, tuple(extra), len(v.transformer.resblocks), v.transformer.width,
                                 patches + 1), model.vision.cfg.frames))
    if model.audio is not None and audio_samples is not None:
        a, enc = model.audio, model.audio.encoder
        samples = a.effective_samples(audio_samples)
        chunk = 30 * SAMPLE_RATE
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
    """The card's peak dense bf16 TFLOP/s: ``override`` if given, else the table by device name."""
    if override:
        return override
    for key, value in PEAK_BF16_TFLOPS:
        if key in device_name:
            return value
    return None


def sample_lengths(batch: dict) -> tuple[list[int], list[int]]:
    """Per sample of a collated batch (packed or padded): real tokens and target tokens."""
    labels = batch["labels"][:, 1:].cpu()
    target = labels != IGNORE_INDEX
    if "segment" in batch:
        seg = batch["segment"].cpu()
        n = len(batch["names"])
        tokens = torch.bincount(seg[seg >= 0], minlength=n)
        targets = torch.bincount(seg[:, 1:][target], minlength=n)
        return tokens.tolist(), targets.tolist()
    return batch["attention_mask"].sum(1).tolist(), target.sum(1).tolist()


def batch_flops(model, batch: dict, shape: LLMShape | None = None, audio_samples: int | None = None) -> float:
    """Model FLOPs of one training micro-batch: every sample at its own length, plus the frozen
    encoders' forward when the batch carries raw media (``frames`` / ``audio``) rather than cached
    features. ``audio_samples`` fixes every clip's audio length (the benchmark's synthetic clips);
    by default each clip's own waveform length is used."""
    shape = shape or llm_shape(model.llm)
    tokens, targets = sample_lengths(batch)
    total = float(sum(train_flops_per_sequence(shape, t, tt) for t, tt in zip(tokens, targets, strict=True)))
    if "frames" not in batch and "audio" not in batch:
        return total  # cached features: the frozen encoders did not run
    videos = batch["video_present"].tolist() if "frames" in batch else [False] * len(tokens)
    waves = batch.get("audio") or [None] * len(tokens)
    for video, wave in zip(videos, waves, strict=True):
        n = None if wave is None else (audio_samples if audio_samples is not None else int(wave.shape[-1]))
        total += sum(encoder_forward_flops(e) * items for e, items in encoder_shapes(model, n, video))
    return total
