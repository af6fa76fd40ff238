"""Offline architectures of the shipped real models, and the check against a real checkpoint.

``affectgpt/model/architectures/`` holds, per real model, the fields that fix its shapes: the
LLM's ``config.json`` fields (Qwen2.5-0.5B/1.5B/7B-Instruct) and Whisper's ``ModelDimensions``
(small, large-v3). open_clip ships its own model configs (``ViT-L-14-quickgelu``, ...). With them
any config builds with random weights on any device, ``meta`` included, with no network; when
real weights are loaded, the checkpoint's own config must agree with the stored one field by field.
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import AutoConfig

ARCHITECTURE_DIR = Path(__file__).parent / "architectures"


def architecture_path(name: str) -> Path:
    """A shipped architecture name (file stem in ``architectures/``) or a path to a JSON file."""
    p = Path(name)
    if p.suffix == ".json":
        if not p.is_file():
            raise FileNotFoundError(f"{p}: architecture file not found")
        return p
    shipped = ARCHITECTURE_DIR / f"{name}.json"
    if not shipped.is_file():
        known = sorted(f.stem for f in ARCHITECTURE_DIR.glob("*.json"))
        raise FileNotFoundError(f"architecture {name!r}: no {shipped}; shipped: {known} (or give a path to a .json)")
    return shipped


def load_architecture(name: str) -> dict:
    """The stored fields of an architecture (see ``architecture_path``)."""
    path = architecture_path(name)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e


def check_architecture(expected: dict, found: dict, expected_from: str, found_from: str) -> None:
    """Every stored field must be present in the checkpoint's config with the same value.

    An LLM record (it has ``model_type``) is compared after both sides pass through transformers'
    config class of that family, so a legacy ``config.json`` (``rope_theta`` at the top) and one
    written by transformers 5 (``rope_parameters``) compare equal for any family. Raises ValueError
    listing each differing field (expected vs found) and both sources."""
    if "model_type" in expected:
        if found.get("model_type") != expected["model_type"]:
            raise ValueError(f"{found_from} does not match the architecture {expected_from}: model_type: expected "
                             f"{expected['model_type']!r}, found {found.get('model_type', '<absent>')!r}")
        norm_expected, norm_found = normalized_llm_config(expected), normalized_llm_config(found)
        # fields the config class folds into others (rope_theta into rope_parameters) are compared there
        keys = [k for k in expected if k in norm_expected]
        if any(k.startswith("rope") for k in expected) and "rope_parameters" not in keys:
            keys.append("rope_parameters")
        expected = {k: norm_expected[k] for k in keys}
        found = {k: norm_found.get(k, "<absent>") for k in keys}
    diffs = []
    for key, want in expected.items():
        have = found.get(key, "<absent>")
        same = (abs(float(have) - float(want)) <= 1e-12 * max(1.0, abs(float(want)))
                if isinstance(want, float) and isinstance(have, (int, float)) else have == want)
        if not same:
            diffs.append(f"{key}: expected {want!r}, found {have!r}")
    if diffs:
        raise ValueError(f"{found_from} does not match the architecture {expected_from}: " + "; ".join(diffs))


def normalized_llm_config(fields: dict) -> dict:
    """``fields`` (a config.json's or a stored record's) as the family's config class writes them."""
    fields = {k: v for k, v in fields.items() if k not in ("transformers_version", "dtype", "torch_dtype")}
    model_type = fields.pop("model_type")
    return AutoConfig.for_model(model_type, **fields).to_dict()
