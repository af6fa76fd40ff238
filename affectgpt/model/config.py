"""Config dictionaries (Hydra's ``model`` group, a checkpoint's ``config.yaml``, an export's record) →
``ModelConfig``.

The dataclasses live in :mod:`affectgpt.core.model_config`, where the command-line schema types the same
fields; this reader still names unknown keys, for configs that come from a checkpoint or a Python caller."""

from __future__ import annotations

from dataclasses import asdict, fields, is_dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from affectgpt.core.model_config import (
    META_KEYS,
    AdapterConfig,
    AudioConfig,
    LLMConfig,
    LoraSettings,
    ModelConfig,
    VisionConfig,
)
from affectgpt.model.tiny import apply_tiny_llm_lora, ensure_tiny_assets

_META_KEYS = META_KEYS | {"architecture"}  # a top-level architecture in configs saved by older versions


def _make(cls, d: dict | None, where: str):
    if d is None:
        return None
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; expected some of {sorted(known)}")
    kwargs: dict[str, Any] = {}
    for k, v in d.items():
        if k == "lora" and cls is LLMConfig:
            v = _make(LoraSettings, v, f"{where}.lora")
        elif isinstance(v, list):
            v = list(v)
        kwargs[k] = v
    return cls(**kwargs)


def to_plain(cfg) -> dict:
    """OmegaConf / dataclass / dict → plain dict (resolved)."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)
    if is_dataclass(cfg):
        return asdict(cfg)
    return dict(cfg)


def model_config(d) -> ModelConfig:
    d = {k: v for k, v in apply_tiny_llm_lora(to_plain(d)).items() if k not in _META_KEYS}
    unknown = sorted(set(d) - {f.name for f in fields(ModelConfig)})
    if unknown:
        raise ValueError(f"model config: unknown keys {unknown}")
    return ModelConfig(
        vision=_make(VisionConfig, d.get("vision"), "model.vision"),
        audio=_make(AudioConfig, d.get("audio"), "model.audio"),
        video_adapter=_make(AdapterConfig, d.get("video_adapter") or {}, "model.video_adapter"),
        audio_adapter=_make(AdapterConfig, d.get("audio_adapter") or {}, "model.audio_adapter"),
        fusion=bool(d.get("fusion", False)),
        fusion_dim=int(d.get("fusion_dim", 1024)),
        fusion_trainable=bool(d.get("fusion_trainable", True)),
        fusion_weight=str(d.get("fusion_weight", "mlp")),
        prompt=str(d.get("prompt", "chat")),
        llm=_make(LLMConfig, d.get("llm") or {}, "model.llm"),
        init=str(d.get("init", "pretrained")),
    )


def prepare(d) -> dict:
    """The plain config, after the tiny config has written its random weights (on first use)."""
    plain = to_plain(d)
    if plain.get("tiny_assets"):
        ensure_tiny_assets(plain["tiny_assets"], int(plain.get("tiny_seed", 1234)),
                           plain.get("tiny_tokenizer", "bpe"), plain.get("tiny_corpus"))
    return plain
