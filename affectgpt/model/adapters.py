"""Trainable adapters from frozen-encoder features to LLM-width modality tokens.

- ``qformer`` (video): learned frame-position embeddings on the per-frame tokens, then a BLIP-2
  Q-Former (``Blip2QFormerModel``) with ``num_query_tokens`` learned queries over all frame
  tokens, then a linear projection to the LLM width (Video-LLaMA's design).
- ``qformer`` (audio, window-level): encoder frames are cut into windows of ``window_seconds``
  every ``stride_seconds``; each window yields ``queries_per_window`` tokens (SALMONN's design).
- ``attention``: ``num_query_tokens`` learned queries, one multi-head attention pooling layer.
- ``mean``: the mean over all tokens, projected (one token).
- ``score``: one raw linear score per token, the score-weighted sum (no softmax, no norm, no
  query), projected (one token): the released AffectGPT's "attention" pooling.
- ``PreFusion``: one token mixing both modalities (AffectGPT 2025's pre-fusion); its weight net is
  ``mlp`` (GELU, softmax over the present modalities) or ``linear`` (the released model's: two
  linears, no activation, raw weights).

Audio tokens per clip (``AudioAdapter.num_tokens`` = ``TokenPlan.audio_tokens``): a waveform of
``N`` samples at 16 kHz is first capped by the encoder's long-audio policy (``truncate``: 30 s;
``chunk``: ``max_seconds``, each 30-s piece encoded on its own and the outputs concatenated), then
gives ``F = ceil(N / 320)`` Whisper frames (50 per second). With ``qformer`` windows of ``W``
frames every ``S`` frames: ``windows = 1 if F <= W else ceil((F - W) / S) + 1`` and tokens =
``windows x queries_per_window``. ``attention`` gives ``num_query_tokens``, ``mean`` one token,
whatever the length. Example, windows of 2 s / stride 2 s, 1 query: 1 s → 1, 7.3 s → 4, 30 s → 15,
45 s → 23 (chunk) or 15 (truncate).
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch import nn

from affectgpt.core.model_config import AdapterConfig
from affectgpt.core.plan import ENCODER_FRAMES_PER_SECOND

POOL_KINDS = ("qformer", "attention", "mean", "score")
SINGLE_TOKEN_KINDS = ("mean", "score")
FUSION_WEIGHT_NETS = ("mlp", "linear")


def _qformer(cfg: AdapterConfig, encoder_dim: int):
    from transformers import (  # lazy: seconds to import; only the Q-Former adapter needs it
        Blip2QFormerConfig,
        Blip2QFormerModel,
    )

    qcfg = Blip2QFormerConfig(
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        intermediate_size=cfg.intermediate_size,
        encoder_hidden_size=encoder_dim,
        cross_attention_frequency=1,
        hidden_dropout_prob=cfg.dropout,
        attention_probs_dropout_prob=cfg.dropout,
    )
    return Blip2QFormerModel(qcfg)


class FeatureStandardizer(nn.Module):
    """(x - mean) / std with statistics fixed from training data (buffers, saved with the adapter).

    Frozen encoders' features can be dominated by a component shared by every clip; a LayerNorm
    does not remove it, a fixed per-position mean does. Identity until ``fit`` is called."""

    def __init__(self, dim: int, positions: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(positions, dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, feats: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """feats [N,P,D] (P ≤ positions) with optional validity mask [N,P]."""
        m = torch.ones(feats.shape[:2], dtype=feats.dtype) if mask is None else mask.to(feats.dtype)
        count = m.sum(0).clamp(min=1).unsqueeze(-1)
        mean = (feats * m.unsqueeze(-1)).sum(0) / count
        p = feats.shape[1]
        self.mean[:p] = mean.to(self.mean.dtype)
        if p < self.mean.shape[0]:
            self.mean[p:] = mean[m.sum(0) > 0].mean(0) if (m.sum(0) > 0).any() else 0
        centred = (feats - mean) * m.unsqueeze(-1)
        var = (centred**2).sum((0, 1)) / m.sum().clamp(min=1)
        self.std.copy_(var.sqrt().clamp(min=1e-6).to(self.std.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = x.shape[-2]
        mean = self.mean[:p] if p <= self.mean.shape[0] else self.mean.mean(0, keepdim=True)
        return (x - mean.to(x.dtype)) / self.std.to(x.dtype)


class VideoAdapter(nn.Module):
    """[B,T,Nv,Dv] frame features → [B,num_tokens,llm_dim]."""

    def __init__(self, cfg: AdapterConfig, encoder_dim: int, tokens_per_frame: int, llm_dim: int):
        super().__init__()
        if cfg.kind not in POOL_KINDS:
            raise ValueError(f"video adapter kind must be {'|'.join(POOL_KINDS)}, got {cfg.kind!r}")
        self.cfg = cfg
        self.standardizer = FeatureStandardizer(encoder_dim, tokens_per_frame) if cfg.standardize else None
        self.frame_position = nn.Embedding(cfg.max_frames, encoder_dim) if cfg.frame_position else None
        if self.frame_position is not None:
            nn.init.normal_(self.frame_position.weight, std=0.02)
        self.pool = _Pool(cfg, encoder_dim)
        self.proj = nn.Linear(self.pool.out_dim, llm_dim)
        self.num_tokens = 1 if cfg.kind in SINGLE_TOKEN_KINDS else cfg.num_query_tokens

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        feats = feats.to(self.proj.weight.dtype)  # frozen encoders may run in bf16
        b, t, n, d = feats.shape
        if t > self.cfg.max_frames:
            raise ValueError(f"{t} frames exceed video adapter max_frames={self.cfg.max_frames}")
        x = self.standardizer(feats) if self.standardizer is not None else feats
        if self.frame_position is not None:
            # Through the module call, not .weight: ZeRO-3 gathers a partitioned weight only in its module's forward.
            pos = self.frame_position(torch.arange(t, device=x.device))
            x = x + pos.view(1, t, 1, d).to(x.dtype)
        return self.proj(self.pool(x.reshape(b, t * n, d), None))


class AudioAdapter(nn.Module):
    """Variable-length Whisper features → window-level tokens [B,max_tokens,llm_dim] + counts.

    qformer: windows of window_seconds every stride_seconds, queries_per_window tokens each, so
    a clip of S seconds yields ``num_tokens(S)`` tokens. attention/mean pool the whole clip."""

    def __init__(self, cfg: AdapterConfig, encoder_dim: int, llm_dim: int, max_positions: int = 1500):
        super().__init__()
        if cfg.kind not in POOL_KINDS:
            raise ValueError(f"audio adapter kind must be {'|'.join(POOL_KINDS)}, got {cfg.kind!r}")
        if cfg.kind == "qformer" and (cfg.window_seconds <= 0 or cfg.stride_seconds <= 0):
            raise ValueError("audio adapter window_seconds and stride_seconds must be > 0")
        self.cfg = cfg
        self.window = max(1, round(cfg.window_seconds * ENCODER_FRAMES_PER_SECOND))
        self.stride = max(1, round(cfg.stride_seconds * ENCODER_FRAMES_PER_SECOND))
        self.standardizer = FeatureStandardizer(encoder_dim, max_positions) if cfg.standardize else None
        pool_cfg = cfg if cfg.kind != "qformer" else replace(cfg, num_query_tokens=cfg.queries_per_window)
        self.pool = _Pool(pool_cfg, encoder_dim)
        self.proj = nn.Linear(self.pool.out_dim, llm_dim)

    def num_windows(self, n_frames: int) -> int:
        if n_frames <= self.window:
            return 1
        return math.ceil((n_frames - self.window) / self.stride) + 1

    def num_tokens(self, n_frames: int) -> int:
        """Tokens for a clip whose encoder output has n_frames (50 per second)."""
        if self.cfg.kind == "qformer":
            return self.num_windows(n_frames) * self.cfg.queries_per_window
        return 1 if self.cfg.kind in SINGLE_TOKEN_KINDS else self.cfg.num_query_tokens

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[int]]:
        feats = [f.to(self.proj.weight.dtype) for f in feats]
        if self.standardizer is not None:
            feats = [self.standardizer(f.unsqueeze(0)).squeeze(0) for f in feats]
        if self.cfg.kind != "qformer":
            x, mask = pad_features(feats)
            out = self.pool(x, mask)
            return self.proj(out), [out.shape[1]] * len(feats)
        windows, masks, counts = [], [], []
        for f in feats:
            nw = self.num_windows(f.shape[0])
            need = (nw - 1) * self.stride + self.window
            padded = torch.cat([f, f.new_zeros(need - f.shape[0], f.shape[1])]) if need > f.shape[0] else f
            valid = torch.arange(need, device=f.device) < f.shape[0]
            windows.append(padded.unfold(0, self.window, self.stride).transpose(1, 2))  # [nw, window, D]
            masks.append(valid.unfold(0, self.window, self.stride))
            counts.append(nw * self.cfg.queries_per_window)
        pooled = self.pool(torch.cat(windows), torch.cat(masks))  # [sum nw, q, H]
        tokens = self.proj(pooled).flatten(0, 1).split(counts)
        out = torch.zeros(len(feats), max(counts), tokens[0].shape[-1], dtype=tokens[0].dtype, device=tokens[0].device)
        for i, t in enumerate(tokens):
            out[i, : t.shape[0]] = t
        return out, counts


class PreFusion(nn.Module):
    """One token from both modalities: each time-averaged and projected to fusion_dim, weighted by
    a small net, projected to the LLM width. ``weight_net``: ``mlp`` (2F→F/4, GELU, →2, softmax over
    the present modalities) or ``linear`` (2F→F→2, no activation, raw weights; an absent modality
    gets weight 0), the released model's."""

    def __init__(self, video_dim: int, audio_dim: int, llm_dim: int, fusion_dim: int = 1024,
                 weight_net: str = "mlp"):
        super().__init__()
        if weight_net not in FUSION_WEIGHT_NETS:
            raise ValueError(f"fusion weight net must be {'|'.join(FUSION_WEIGHT_NETS)}, got {weight_net!r}")
        self.weight_net = weight_net
        self.video = nn.Linear(video_dim, fusion_dim)
        self.audio = nn.Linear(audio_dim, fusion_dim)
        if weight_net == "linear":
            self.weight = nn.Sequential(nn.Linear(2 * fusion_dim, fusion_dim), nn.Linear(fusion_dim, 2))
        else:
            self.weight = nn.Sequential(
                nn.Linear(2 * fusion_dim, fusion_dim // 4), nn.GELU(), nn.Linear(fusion_dim // 4, 2)
            )
        self.proj = nn.Linear(fusion_dim, llm_dim)

    def forward(
        self, video: torch.Tensor, video_present: torch.Tensor, audio: torch.Tensor, audio_mask: torch.Tensor
    ) -> torch.Tensor:
        """video [B,T,Nv,Dv], audio [B,Ta,Da] with mask [B,Ta] → [B,1,llm_dim]."""
        video, audio = video.to(self.proj.weight.dtype), audio.to(self.proj.weight.dtype)
        v = self.video(video.flatten(1, 2).mean(1))
        m = audio_mask.unsqueeze(-1).to(audio.dtype)
        a = self.audio((audio * m).sum(1) / m.sum(1).clamp(min=1))
        logits = self.weight(torch.cat([v, a], -1))
        present = torch.stack([video_present, audio_mask.any(1)], -1)
        if self.weight_net == "linear":
            w = logits * present.to(logits.dtype)
        else:
            w = logits.masked_fill(~present, float("-inf")).softmax(-1).nan_to_num(0.0)
        return self.proj(w[:, :1] * v + w[:, 1:] * a).unsqueeze(1)


class _Pool(nn.Module):
    """Tokens [N,L,D] (+ mask [N,L]) → [N,Q,H]: qformer, attention pooling, mean or raw scores."""

    def __init__(self, cfg: AdapterConfig, encoder_dim: int):
        super().__init__()
        self.kind = cfg.kind
        if cfg.kind == "qformer":
            self.qformer = _qformer(cfg, encoder_dim)
            self.query_tokens = nn.Parameter(torch.randn(1, cfg.num_query_tokens, cfg.hidden_size) * 0.02)
            self.out_dim = cfg.hidden_size
        elif cfg.kind == "attention":
            self.norm = nn.LayerNorm(encoder_dim)
            self.query_tokens = nn.Parameter(torch.randn(1, cfg.num_query_tokens, encoder_dim) * 0.02)
            if encoder_dim % cfg.num_heads:
                raise ValueError(
                    f"attention pooling: encoder width {encoder_dim} is not divisible by num_heads={cfg.num_heads}"
                )
            self.attn = nn.MultiheadAttention(encoder_dim, cfg.num_heads, batch_first=True)
            self.out_dim = encoder_dim
        elif cfg.kind == "score":
            self.score = nn.Linear(encoder_dim, 1)
            self.out_dim = encoder_dim
        else:
            self.norm = nn.LayerNorm(encoder_dim)
            self.out_dim = encoder_dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if self.kind == "qformer":
            q = self.query_tokens.expand(x.shape[0], -1, -1).to(x.dtype)
            enc_mask = None if mask is None else mask.long()
            return self.qformer(
                query_embeds=q, encoder_hidden_states=x, encoder_attention_mask=enc_mask
            ).last_hidden_state
        if self.kind == "score":  # sum_t s_t x_t with raw s_t = w.x_t + b: no softmax, no normalisation
            s = self.score(x)
            if mask is not None:
                s = s * mask.unsqueeze(-1).to(s.dtype)
            return (s * x).sum(1, keepdim=True)
        x = self.norm(x)
        if self.kind == "attention":
            q = self.query_tokens.expand(x.shape[0], -1, -1).to(x.dtype)
            out, _ = self.attn(q, x, x, key_padding_mask=None if mask is None else ~mask.bool(), need_weights=False)
            return out
        if mask is None:
            return x.mean(1, keepdim=True)
        m = mask.unsqueeze(-1).to(x.dtype)
        return ((x * m).sum(1) / m.sum(1).clamp(min=1)).unsqueeze(1)


def pad_features(feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Variable-length ``[T_i, D]`` features as one zero-padded ``[B, T, D]`` batch and its bool mask."""
    n = max(f.shape[0] for f in feats)
    x = feats[0].new_zeros(len(feats), n, feats[0].shape[-1])
    mask = torch.zeros(len(feats), n, dtype=torch.bool, device=feats[0].device)
    for i, f in enumerate(feats):
        x[i, : f.shape[0]] = f
        mask[i, : f.shape[0]] = True
    return x, mask
