"""Frozen encoders through transformers, as the released AffectGPT computes its features.

- ``audio.kind: hubert`` (``HubertAudioEncoder``): ``HubertModel`` (default
  ``TencentGameMate/chinese-hubert-large``) on 8 clips of exactly 2 s, clip k starting at
  k·max(D−2, 0)/7 s (pytorchvideo's ``ConstantClipsPerVideoSampler``; audio under 2 s zero-padded),
  the feature extractor's zero-mean/unit-variance normalisation with ONE mean and variance over all
  clips of the clip (the released code hands the extractor a 2-D tensor, which it treats as one
  utterance), the mean of the last 4 hidden states, then the mean over time → [8, hidden].
- ``vision.kind: hf_clip`` (``HFClipVisionEncoder``): ``CLIPModel.get_image_features`` per frame,
  i.e. ``visual_projection(post_layernorm(CLS))``, projected and not normalised; the text tower is
  not kept.

``weights="random"`` builds the same shapes from ``architecture`` (a file in
``affectgpt/model/architectures``) or the model folder's ``config.json``, on any device.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, Wav2Vec2FeatureExtractor
from transformers.utils import cached_file

from affectgpt.core.plan import SAMPLE_RATE
from affectgpt.data.frames import resize_crop
from affectgpt.model.architecture import load_architecture
from affectgpt.model.llm import torch_dtype

# CLIP's image normalisation (openai/clip-vit-large-patch14 preprocessor_config.json), when a folder has none.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
NORM_EPS = 1e-7  # Wav2Vec2FeatureExtractor's zero_mean_unit_var_norm


def _freeze(module: nn.Module) -> nn.Module:
    module.requires_grad_(False)
    module.eval()
    return module


def _hf_config(model_type: str, architecture: str | None, name_or_path: str):
    """A transformers config for a random build: the stored architecture, else the folder's config.json."""
    if architecture:
        fields = dict(load_architecture(architecture))
    else:
        path = Path(name_or_path) / "config.json"
        if not path.is_file():
            raise ValueError(f"{name_or_path}: random weights need an architecture or a folder with config.json")
        fields = json.loads(path.read_text())
    found = fields.pop("model_type", model_type)
    if found != model_type:
        raise ValueError(f"{architecture or name_or_path}: model_type {found!r}, expected {model_type!r}")
    fields.pop("architectures", None)
    return AutoConfig.for_model(model_type, **fields)


def _load_strict(cls, name_or_path: str, device):
    model, info = cls.from_pretrained(name_or_path, dtype=torch.float32, output_loading_info=True)
    missing, mismatched = list(info.get("missing_keys", [])), list(info.get("mismatched_keys", []))
    if missing or mismatched:
        raise RuntimeError(f"{name_or_path}: weights do not match {cls.__name__}: missing={missing[:20]} "
                           f"mismatched={mismatched[:20]}")
    return model.to(device)


# ----------------------------------------------------------------------------- HuBERT
def clip_starts(num_samples: int, clips: int = 8, clip_seconds: float = 2.0,
                sample_rate: int = SAMPLE_RATE) -> list[int]:
    """First sample of each clip: floor(k·max(D − clip, 0)/(clips − 1)·sr), D = num_samples/sr, with
    the same float-then-exact-fraction arithmetic as pytorchvideo's sampler."""
    duration = num_samples / sample_rate
    step = Fraction(max(duration - clip_seconds, 0)) / max(clips - 1, 1)
    return [int(step * k * sample_rate) for k in range(clips)]


def hubert_clips(wave: torch.Tensor, clips: int = 8, clip_seconds: float = 2.0,
                 sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """float [N] waveform → [clips, clip_samples]; audio shorter than one clip is zero-padded at the end."""
    size = int(round(clip_seconds * sample_rate))
    if wave.shape[0] < size:
        wave = torch.cat([wave, wave.new_zeros(size - wave.shape[0])])
    return torch.stack([wave[s : s + size] for s in clip_starts(wave.shape[0], clips, clip_seconds, sample_rate)])


def joint_normalize(x: torch.Tensor) -> torch.Tensor:
    """(x − mean)/sqrt(var + 1e-7) with one mean and one (population) variance over every element."""
    x64 = x.double()
    return ((x64 - x64.mean()) / torch.sqrt(x64.var(unbiased=False) + NORM_EPS)).to(x.dtype)


class HubertAudioEncoder(nn.Module):
    """HuBERT features of 8 fixed 2-s clips: [clips, hidden] per waveform (see the module doc)."""

    def __init__(self, cfg, device: str | torch.device = "cpu", weights: str = "pretrained"):
        super().__init__()
        from transformers import HubertModel  # lazy: loads a model family; only this encoder needs it

        if cfg.clips < 1 or cfg.clip_seconds <= 0 or cfg.last_layers < 1:
            raise ValueError(f"audio (hubert): clips, clip_seconds and last_layers must be positive, got "
                             f"{cfg.clips}, {cfg.clip_seconds}, {cfg.last_layers}")
        self.cfg = cfg
        if weights == "pretrained":
            encoder = _load_strict(HubertModel, cfg.model, device)
            fx = Wav2Vec2FeatureExtractor.from_pretrained(cfg.model)
            if fx.sampling_rate != SAMPLE_RATE:
                raise ValueError(f"{cfg.model}: feature extractor expects {fx.sampling_rate} Hz, not {SAMPLE_RATE}")
            self.do_normalize = bool(fx.do_normalize)
        elif weights == "random":
            config = _hf_config("hubert", cfg.architecture, cfg.model)
            with torch.device(device):
                encoder = HubertModel(config)
            self.do_normalize = True
        else:
            raise ValueError(f"weights must be 'pretrained' or 'random', got {weights!r}")
        c = encoder.config
        if cfg.last_layers > c.num_hidden_layers + 1:
            raise ValueError(f"audio.last_layers={cfg.last_layers}: {cfg.model} has {c.num_hidden_layers} layers")
        self.encoder = _freeze(encoder.to(device=device, dtype=torch_dtype(cfg.dtype)))
        self.out_dim = c.hidden_size
        self.dims = {"model_type": "hubert", "hidden_size": c.hidden_size, "num_hidden_layers": c.num_hidden_layers,
                     "do_stable_layer_norm": bool(c.do_stable_layer_norm)}

    def effective_samples(self, num_samples: int) -> int:
        return min(num_samples, int(self.cfg.max_seconds * SAMPLE_RATE))

    def preprocessing(self) -> dict:
        return {"sample_rate": SAMPLE_RATE, "clips": self.cfg.clips, "clip_seconds": self.cfg.clip_seconds,
                "normalize": "joint" if self.do_normalize else "none", "last_layers": self.cfg.last_layers,
                "max_seconds": self.cfg.max_seconds}

    def clips(self, wave: torch.Tensor) -> torch.Tensor:
        """The normalised model input of one waveform: [clips, clip_samples]."""
        x = hubert_clips(wave[: self.effective_samples(wave.shape[0])].float(), self.cfg.clips, self.cfg.clip_seconds)
        return joint_normalize(x) if self.do_normalize else x

    @torch.no_grad()
    def forward(self, waves: list[torch.Tensor]) -> list[torch.Tensor]:
        """Waveforms (float32 [N] at 16 kHz) → [clips, hidden] each."""
        param = next(self.encoder.parameters())
        x = torch.cat([self.clips(w) for w in waves]).to(param.device, param.dtype)
        hidden = self.encoder(x, output_hidden_states=True).hidden_states
        feats = torch.stack(hidden[-self.cfg.last_layers:]).mean(0).mean(1)  # [B*clips, hidden]
        return list(feats.split(self.cfg.clips))


# ----------------------------------------------------------------------------- CLIP (transformers)
class _ImageFeatures(nn.Module):
    """``CLIPModel.get_image_features`` without the text tower: projection of the pooled CLS."""

    def __init__(self, clip):
        super().__init__()
        self.vision_model, self.visual_projection = clip.vision_model, clip.visual_projection

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.visual_projection(self.vision_model(pixel_values=pixel_values).pooler_output)


class HFClipVisionEncoder(nn.Module):
    """transformers' CLIP image features per frame: [B,T,1,projection_dim] (``output: pooled`` only)."""

    def __init__(self, cfg, device: str | torch.device = "cpu", weights: str = "pretrained"):
        super().__init__()
        from transformers import CLIPModel  # lazy: loads a model family; only this encoder needs it

        if cfg.output != "pooled":
            raise ValueError(f"vision.kind=hf_clip gives one projected embedding per frame (output: pooled), "
                             f"got output={cfg.output!r}")
        self.cfg = cfg
        mean, std = CLIP_MEAN, CLIP_STD
        if weights == "pretrained":
            clip = _load_strict(CLIPModel, cfg.model, device)
            pp = _preprocessor_config(cfg.model)
            if pp:
                mean, std = tuple(pp.get("image_mean", mean)), tuple(pp.get("image_std", std))
        elif weights == "random":
            config = _hf_config("clip", cfg.architecture, cfg.model)
            with torch.device(device):
                clip = CLIPModel(config)
        else:
            raise ValueError(f"weights must be 'pretrained' or 'random', got {weights!r}")
        size = clip.config.vision_config.image_size
        self.image_size = (size, size)
        self.interpolation = cfg.interpolation or "bicubic"
        self.resize_mode = cfg.resize_mode or "shortest"
        self.register_buffer("mean", torch.tensor(mean, device=device).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, device=device).view(1, 3, 1, 1), persistent=False)
        self.visual = _freeze(_ImageFeatures(clip).to(device=device, dtype=torch_dtype(cfg.dtype)))
        self.out_dim = clip.config.projection_dim
        self.tokens_per_frame = 1
        del clip

    def preprocessing(self) -> dict:
        return {"image_size": list(self.image_size), "interpolation": self.interpolation,
                "resize_mode": self.resize_mode, "mean": [round(float(x), 8) for x in self.mean.flatten()],
                "std": [round(float(x), 8) for x in self.std.flatten()], "frames": self.cfg.frames,
                "frame_sampling": self.cfg.frame_sampling, "resize_rule": "torchvision"}

    @torch.no_grad()
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames [B,T,H,W,3] uint8, or already resized [B,T,3,S,S] floats in 0..1 → [B,T,1,D]."""
        b, t = frames.shape[:2]
        flat = frames.flatten(0, 1)
        if flat.dtype == torch.uint8:
            flat = resize_crop(flat, self.image_size, self.interpolation, self.resize_mode)
        x = (flat.to(self.mean.device) - self.mean) / self.std
        feats = self.visual(x.to(next(self.visual.parameters()).dtype))
        return feats.reshape(b, t, 1, feats.shape[-1])


def _preprocessor_config(name_or_path: str) -> dict | None:
    local = Path(name_or_path) / "preprocessor_config.json"
    if local.is_file():
        return json.loads(local.read_text())
    path = cached_file(name_or_path, "preprocessor_config.json", _raise_exceptions_for_missing_entries=False)
    return json.loads(Path(path).read_text()) if path else None
