"""Frozen encoders: CLIP's vision tower (open_clip) per frame, Whisper's audio encoder on log-mel;
``kind: hf_clip`` / ``kind: hubert`` select the transformers encoders of the released AffectGPT
(:mod:`affectgpt.model.hf_encoders`) through ``make_vision_encoder`` / ``make_audio_encoder``.

Frozen means ``requires_grad=False``, ``eval()`` and ``torch.no_grad()`` in ``forward``: the
outputs depend only on the weights and the preprocessing, which is what makes them cacheable
(``identity()`` names both).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
import whisper
from torch import nn
from whisper.model import AudioEncoder as WhisperAudioEncoder

from affectgpt.core.model_config import AudioConfig, VisionConfig
from affectgpt.core.plan import SAMPLE_RATE, WHISPER_FRAME_SAMPLES
from affectgpt.data.frames import resize_crop
from affectgpt.model.architecture import architecture_path, check_architecture, load_architecture
from affectgpt.model.hf_encoders import HFClipVisionEncoder, HubertAudioEncoder
from affectgpt.model.llm import torch_dtype

WHISPER_HOP = 160  # samples per mel frame
WHISPER_CHUNK_SECONDS = 30
OPEN_CLIP_CONFIG_DIR = Path(__file__).parent / "configs" / "open_clip"


def _freeze(module: nn.Module) -> nn.Module:
    module.requires_grad_(False)
    module.eval()
    return module


def file_fingerprint(path: str | Path) -> str:
    """sha256 of a file's first and last MiB plus its size: identifies weights without reading GBs."""
    p = Path(path)
    h = hashlib.sha256(str(p.stat().st_size).encode())
    with p.open("rb") as f:
        h.update(f.read(1 << 20))
        if p.stat().st_size > 2 << 20:
            f.seek(-(1 << 20), 2)
            h.update(f.read())
    return h.hexdigest()[:16]


VISION_KINDS = ("open_clip", "hf_clip")
AUDIO_KINDS = ("whisper", "hubert")
FRAME_SAMPLING = ("centre", "index")


class VisionEncoder(nn.Module):
    """open_clip's vision tower with open_clip's own eval preprocessing (resize shortest side,
    centre crop, mean/std), applied to decoded uint8 frames as tensor ops.

    weights="pretrained" loads ``cfg.pretrained`` (a tag, a local file) strictly through open_clip,
    or the weights of a ``local-dir:`` folder; "random" builds the same architecture without
    loading anything, directly on ``device`` (``meta`` included)."""

    def __init__(self, cfg: VisionConfig, device: str | torch.device = "cpu", weights: str = "pretrained"):
        super().__init__()
        import open_clip  # lazy: seconds to import; only the CLIP encoder needs it

        open_clip.add_model_config(OPEN_CLIP_CONFIG_DIR)
        self.cfg = cfg
        if cfg.output not in ("tokens", "pooled"):
            raise ValueError(f"vision.output must be 'tokens' or 'pooled', got {cfg.output!r}")
        if weights not in ("pretrained", "random"):
            raise ValueError(f"weights must be 'pretrained' or 'random', got {weights!r}")
        local_dir = cfg.model.startswith("local-dir:")
        if local_dir and not (Path(cfg.model[len("local-dir:"):]) / "open_clip_config.json").is_file():
            raise FileNotFoundError(f"{cfg.model}: no open_clip_config.json in that folder")
        if weights == "random":
            # open_clip warns on the root logger that nothing was loaded: here that is the request.
            logging.disable(logging.WARNING)
            try:
                with torch.device(device):
                    clip = open_clip.create_model(cfg.model, pretrained=None, device=device, load_weights=False)
            finally:
                logging.disable(logging.NOTSET)
        elif local_dir:  # weights from the folder itself; a folder without them is an error, not random init
            clip = open_clip.create_model(cfg.model, device=device, require_pretrained=True)
        else:
            pretrained = cfg.pretrained
            if (
                pretrained
                and Path(pretrained).suffix in {".pt", ".pth", ".bin", ".safetensors"}
                and not Path(pretrained).is_file()
            ):
                raise FileNotFoundError(f"{pretrained}: open_clip checkpoint not found")
            if not pretrained:
                raise ValueError(
                    f"vision.pretrained is {pretrained!r} with real weights requested; "
                    "use init=random for random weights"
                )
            clip = open_clip.create_model(cfg.model, pretrained=pretrained, device=device, require_pretrained=True)
        visual = clip.visual.to(torch_dtype(cfg.dtype))
        pp = dict(visual.preprocess_cfg)
        self.image_size = tuple(pp["size"]) if isinstance(pp["size"], (tuple, list)) else (pp["size"], pp["size"])
        self.interpolation = cfg.interpolation or pp.get("interpolation", "bicubic")
        self.resize_mode = cfg.resize_mode or pp.get("resize_mode", "shortest")
        self.register_buffer("mean", torch.tensor(pp["mean"], device=device).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(pp["std"], device=device).view(1, 3, 1, 1), persistent=False)
        visual.output_tokens = cfg.output == "tokens"
        self.visual = _freeze(visual)
        width = visual.transformer.width if hasattr(visual, "transformer") else None
        self.out_dim = width if cfg.output == "tokens" else clip.visual.output_dim
        grid = visual.grid_size if hasattr(visual, "grid_size") else None
        self.tokens_per_frame = (grid[0] * grid[1]) if (cfg.output == "tokens" and grid) else 1
        del clip

    def preprocessing(self) -> dict:
        extra = {} if self.cfg.frame_sampling == "centre" else {"frame_sampling": self.cfg.frame_sampling}
        return {
            **extra,
            "image_size": list(self.image_size),
            "interpolation": self.interpolation,
            "resize_mode": self.resize_mode,
            "mean": [round(float(x), 8) for x in self.mean.flatten()],
            "std": [round(float(x), 8) for x in self.std.flatten()],
            "frames": self.cfg.frames,
            # truncated long side, rounded crop offset (changed once; keys feature caches)
            "resize_rule": "torchvision",
        }

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 [N,H,W,3] → normalised float [N,3,S,S] exactly like open_clip's eval transform."""
        x = resize_crop(frames, self.image_size, self.interpolation, self.resize_mode)
        return (x.to(self.mean.device) - self.mean) / self.std

    @torch.no_grad()
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames [B,T,H,W,3] uint8, or already resized [B,T,3,S,S] floats in 0..1 → [B,T,Nv,Dv]."""
        b, t = frames.shape[:2]
        flat = frames.flatten(0, 1)
        if flat.dtype == torch.uint8:
            x = self.preprocess(flat)
        else:
            x = (flat.to(self.mean.device) - self.mean) / self.std
        out = self.visual(x.to(next(self.visual.parameters()).dtype))
        feats = out[1] if isinstance(out, tuple) else out.unsqueeze(1)
        return feats.reshape(b, t, feats.shape[-2], feats.shape[-1])


def make_vision_encoder(cfg: VisionConfig, device: str | torch.device = "cpu", weights: str = "pretrained"):
    """The frozen vision encoder of ``cfg.kind``."""
    if cfg.kind not in VISION_KINDS or cfg.frame_sampling not in FRAME_SAMPLING:
        raise ValueError(f"model.vision: kind must be one of {VISION_KINDS} and frame_sampling one of "
                         f"{FRAME_SAMPLING}, got {cfg.kind!r} and {cfg.frame_sampling!r}")
    if cfg.kind == "hf_clip":
        return HFClipVisionEncoder(cfg, device, weights)
    return VisionEncoder(cfg, device, weights)


def make_audio_encoder(cfg: AudioConfig, device: str | torch.device = "cpu", weights: str = "pretrained"):
    """The frozen audio encoder of ``cfg.kind``."""
    if cfg.kind not in AUDIO_KINDS:
        raise ValueError(f"model.audio.kind must be one of {AUDIO_KINDS}, got {cfg.kind!r}")
    if cfg.kind == "hubert":
        return HubertAudioEncoder(cfg, device, weights)
    return AudioEncoder(cfg, device, weights)


def whisper_checkpoint_path(model: str) -> Path:
    """A local ``.pt`` file, or a whisper model name resolved through openai-whisper's own download
    cache (``~/.cache/whisper``; downloads when allowed)."""
    if model.endswith((".pt", ".pth")):
        if not Path(model).is_file():
            raise FileNotFoundError(f"{model}: whisper checkpoint not found")
        return Path(model)
    if model not in whisper._MODELS:
        raise ValueError(f"whisper model {model!r}: not a local .pt and not one of {sorted(whisper._MODELS)}")
    root = Path(os.getenv("XDG_CACHE_HOME", Path.home() / ".cache")) / "whisper"
    return Path(whisper._download(whisper._MODELS[model], str(root), False))


def _read_whisper_checkpoint(path: Path) -> dict:
    ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if not isinstance(ckpt, dict) or "dims" not in ckpt or "model_state_dict" not in ckpt:
        found = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(
            f"{path}: not a whisper checkpoint; expected keys 'dims' and 'model_state_dict', found {found}"
        )
    return ckpt


def load_whisper_encoder(path: Path, architecture: str | None = None) -> tuple[nn.Module, dict]:
    """openai-whisper's AudioEncoder with the ``encoder.*`` weights of a whisper checkpoint,
    loaded strictly (decoder weights are skipped; any other key is an error); the dims are checked
    against the stored architecture when one is named."""
    ckpt = _read_whisper_checkpoint(path)
    dims = dict(ckpt["dims"])
    if architecture:
        check_architecture(load_architecture(architecture), dims, str(architecture_path(architecture)), str(path))
    state = ckpt["model_state_dict"]
    other = sorted(k for k in state if not k.startswith(("encoder.", "decoder.")))
    enc_state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    with torch.device("meta"):
        enc = WhisperAudioEncoder(
            dims["n_mels"], dims["n_audio_ctx"], dims["n_audio_state"], dims["n_audio_head"], dims["n_audio_layer"]
        )
    own = set(enc.state_dict())
    missing, unexpected = sorted(own - set(enc_state)), sorted(set(enc_state) - own) + other
    if missing or unexpected:
        raise RuntimeError(
            f"{path}: whisper encoder weights do not match dims {dims}: "
            f"missing={missing[:20]} unexpected={unexpected[:20]}"
        )
    enc.load_state_dict(enc_state, strict=True, assign=True)
    return enc, dims


def whisper_dims(cfg: AudioConfig) -> dict:
    """Dims for a random build: the stored architecture, else the local checkpoint's own."""
    if cfg.architecture:
        return load_architecture(cfg.architecture)
    if cfg.model.endswith((".pt", ".pth")):
        return dict(_read_whisper_checkpoint(whisper_checkpoint_path(cfg.model))["dims"])
    raise ValueError(f"model.audio: random weights for {cfg.model!r} need model.audio.architecture "
                     "(e.g. whisper-large-v3, a file in affectgpt/model/architectures)")


class AudioEncoder(nn.Module):
    """openai-whisper's AudioEncoder; output cropped to the real audio length (50 frames/s).

    weights="pretrained" reads the checkpoint (local .pt or whisper's cache) and loads the
    encoder strictly; "random" builds it from the dims directly on ``device`` (``meta`` included)."""

    def __init__(self, cfg: AudioConfig, device: str | torch.device = "cpu", weights: str = "pretrained"):
        super().__init__()
        if cfg.long_audio not in ("chunk", "truncate"):
            raise ValueError(f"audio.long_audio must be 'chunk' or 'truncate', got {cfg.long_audio!r}")
        if weights not in ("pretrained", "random"):
            raise ValueError(f"weights must be 'pretrained' or 'random', got {weights!r}")
        self.cfg = cfg
        if weights == "pretrained":
            encoder, self.dims = load_whisper_encoder(whisper_checkpoint_path(cfg.model), cfg.architecture)
        else:
            self.dims = whisper_dims(cfg)
            d = self.dims
            with torch.device(device):
                encoder = WhisperAudioEncoder(
                    d["n_mels"], d["n_audio_ctx"], d["n_audio_state"], d["n_audio_head"], d["n_audio_layer"]
                )
        encoder = encoder.to(device=device, dtype=torch_dtype(cfg.dtype))
        for m in encoder.modules():  # whisper's LayerNorm runs in fp32 (it casts its input); its weights must too
            if isinstance(m, nn.LayerNorm):
                m.float()
        self.encoder = _freeze(encoder)
        self.n_mels = self.dims["n_mels"]
        self.out_dim = self.dims["n_audio_state"]
        from whisper.audio import mel_filters  # noqa: F401  (asserts the bundled filters exist)

    @staticmethod
    def num_frames(num_samples: int) -> int:
        """Encoder frames for a waveform of num_samples at 16 kHz (20 ms each, at least 1)."""
        return max(1, math.ceil(num_samples / WHISPER_FRAME_SAMPLES))

    def effective_samples(self, num_samples: int) -> int:
        limit = int(self.cfg.max_seconds * SAMPLE_RATE)
        if self.cfg.long_audio == "truncate":
            limit = min(limit, WHISPER_CHUNK_SECONDS * SAMPLE_RATE)
        return min(num_samples, limit)

    def preprocessing(self) -> dict:
        return {"sample_rate": SAMPLE_RATE, "n_mels": self.n_mels, "pad_to_30s": self.cfg.pad_to_30s,
                "long_audio": self.cfg.long_audio, "max_seconds": self.cfg.max_seconds}

    def _encode_chunks(self, chunks: list[torch.Tensor]) -> list[torch.Tensor]:
        n_ctx_samples = WHISPER_CHUNK_SECONDS * SAMPLE_RATE
        dev = next(self.encoder.parameters()).device
        dtype = next(self.encoder.parameters()).dtype
        if self.cfg.pad_to_30s:
            mels = torch.stack(
                [
                    whisper.log_mel_spectrogram(whisper.pad_or_trim(c, n_ctx_samples).to(dev), self.n_mels)
                    for c in chunks
                ]
            )
            out = self.encoder(mels.to(dtype))
        else:
            # Crop to the longest chunk in the batch (even number of mel frames) and slice the positional embedding.
            longest = max(c.shape[0] for c in chunks)
            n_mel = 2 * self.num_frames(longest)
            mels = torch.stack(
                [
                    whisper.log_mel_spectrogram(whisper.pad_or_trim(c, n_mel * WHISPER_HOP).to(dev), self.n_mels)[
                        :, :n_mel
                    ]
                    for c in chunks
                ]
            )
            out = self._encode_cropped(mels.to(dtype))
        return [o[: self.num_frames(c.shape[0])] for o, c in zip(out, chunks, strict=True)]

    def _encode_cropped(self, mel: torch.Tensor) -> torch.Tensor:
        enc = self.encoder
        x = F.gelu(enc.conv1(mel))
        x = F.gelu(enc.conv2(x)).permute(0, 2, 1)
        x = (x + enc.positional_embedding[: x.shape[1]]).to(x.dtype)
        for block in enc.blocks:
            x = block(x)
        return enc.ln_post(x)

    @torch.no_grad()
    def forward(self, waves: list[torch.Tensor]) -> list[torch.Tensor]:
        """Waveforms (float32 [N] at 16 kHz) → features [Ta_i, Da], Ta_i = ceil(N_i / 320)."""
        n_ctx_samples = WHISPER_CHUNK_SECONDS * SAMPLE_RATE
        pieces, owners = [], []
        for i, w in enumerate(waves):
            w = w[: self.effective_samples(w.shape[0])]
            for start in range(0, max(1, w.shape[0]), n_ctx_samples):
                pieces.append(w[start : start + n_ctx_samples])
                owners.append(i)
        encoded = self._encode_chunks(pieces)
        out: list[list[torch.Tensor]] = [[] for _ in waves]
        for i, e in zip(owners, encoded, strict=False):
            out[i].append(e)
        return [torch.cat(parts, 0) for parts in out]
