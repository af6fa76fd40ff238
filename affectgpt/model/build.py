"""Config dictionaries (Hydra's ``model`` group) → ``AffectGPT`` (the reading: :mod:`affectgpt.model.config`)."""

from __future__ import annotations

from affectgpt.model.affectgpt import AffectGPT
from affectgpt.model.config import model_config, prepare


def build_model(d, device="cpu", weights: str | None = None) -> AffectGPT:
    """Build AffectGPT from a model config; the tiny config first makes its random weights.

    weights: "pretrained" | "random" | None (the config's ``init``, default pretrained). Random
    weights need no downloaded file for the shipped real configs (their architectures live in
    affectgpt/model/architectures) and build directly on ``device``, ``"meta"`` included."""
    return AffectGPT(model_config(prepare(d)), device, weights)
