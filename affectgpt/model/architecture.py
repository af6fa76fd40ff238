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

    Raises ValueError listing each differing field (expected vs found) and both sources."""
    diffs = []
    for key, want in expected.items():
        have = found.get(key, "<absent>")
        same = (abs(float(have) - float(want)) <= 1e-12 * max(1.0, abs(float(want)))
                if isinstance(want, float) and isinstance(have, (int, float)) else have == want)
        if not same:
            diffs.append(f"{key}: expected {want!r}, found {have!r}")
    if diffs:
        raise ValueError(f"{found_from} does not match the architecture {expected_from}: " + "; ".join(diffs))
