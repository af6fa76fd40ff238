"""The media front end of AffectGPT: frozen encoders' features → per-sample modality rows.

``encode_media`` runs the frozen encoders (or takes cached features); ``modality_rows`` runs the
trainable adapters and the pre-fusion on them; ``token_plan`` says how many tokens each modality
takes and how media is prepared for the encoders (the collator's side of the same contract).
Functions of the model's modules (``vision``, ``audio``, ``video_adapter``, ``audio_adapter``,
``fusion``), which stay attributes of the model so that their state keys do not change.
"""

from __future__ import annotations

import torch

from affectgpt.core.plan import TokenPlan
from affectgpt.model.adapters import pad_features
from affectgpt.model.splice import num_samples


def encode_media(model, batch: dict) -> dict:
    """Frozen-encoder features. Uses precomputed ``video_feats``/``audio_feats`` when present."""
    out = {}
    if model.vision is not None and ("video_feats" in batch or "frames" in batch):
        out["video"] = batch["video_feats"].to(model.device) if "video_feats" in batch else \
            model.vision(batch["frames"].to(model.device))
    if model.audio is not None and "audio_feats" in batch:
        out["audio"] = [None if f is None else f.to(model.device) for f in batch["audio_feats"]]
    elif model.audio is not None:
        waves = [w for w in batch["audio"] if w is not None]
        feats = iter(model.audio([w.to(model.device) for w in waves])) if waves else iter(())
        out["audio"] = [None if w is None else next(feats) for w in batch["audio"]]
    return out


def modality_rows(model, batch: dict, feats: dict) -> dict[str, list[torch.Tensor]]:
    """Per sample, per modality, the [n_tokens, llm_dim] rows to splice in (empty when absent)."""
    n = num_samples(batch)
    rows: dict[str, list[torch.Tensor]] = {k: [None] * n for k in ("video", "audio", "fusion")}
    present = batch["video_present"].to(model.device) if "video_present" in batch else \
        torch.zeros(n, dtype=torch.bool)
    if feats.get("video") is not None:
        tokens = model.video_adapter(feats["video"])
        rows["video"] = [tokens[i] if present[i] else tokens[i, :0] for i in range(n)]
    audio = feats.get("audio") or [None] * n
    idx = [i for i, f in enumerate(audio) if f is not None]
    if idx:
        tokens, counts = model.audio_adapter([audio[i] for i in idx])
        for j, i in enumerate(idx):
            rows["audio"][i] = tokens[j, : counts[j]]
    if model.fusion is not None and (feats.get("video") is not None or idx):
        a, mask = pad_features([x if x is not None else torch.zeros(1, model.audio.out_dim, device=model.device)
                                for x in audio])
        mask &= torch.tensor([x is not None for x in audio], device=model.device).unsqueeze(1)
        v = feats.get("video")
        v = torch.zeros(n, 1, 1, model.vision.out_dim, device=model.device) if v is None else v
        rows["fusion"] = list(model.fusion(v, present, a, mask))
    return rows



def token_plan(model) -> TokenPlan:
    """The token plan of a built model: how many tokens each modality takes and how media is prepared."""
    v, a, aa = model.vision, model.audio, model.audio_adapter
    return TokenPlan(
        video_tokens=model.video_adapter.num_tokens if v else 0,
        fusion_tokens=1 if model.fusion is not None else 0,
        image_size=tuple(v.image_size) if v else (1, 1),
        interpolation=v.interpolation if v else "bicubic",
        resize_mode=v.resize_mode if v else "shortest",
        frames=v.cfg.frames if v else 1,
        audio_kind=aa.cfg.kind if a else "mean",
        audio_window=aa.window if a else 1,
        audio_stride=aa.stride if a else 1,
        audio_queries_per_window=aa.cfg.queries_per_window if a else 1,
        audio_fixed_tokens=aa.num_tokens(1) if a else 0,
        audio_max_samples=a.effective_samples(10**12) if a else 0,
        has_vision=v is not None,
        has_audio=a is not None,
        prompt_style=model.cfg.prompt,
        frame_sampling=v.cfg.frame_sampling if v else "centre",
    )
