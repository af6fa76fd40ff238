"""One way for every app to open a checkpoint or an export: the device, the LoRA merge policy, the load.

``open_artifact(path, device, dtype, merge_lora, trust_remote_code, verify_hashes)`` resolves
``device`` (``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``; a CUDA device without CUDA is refused),
applies the merge policy (``auto`` merges LoRA into the base weights on any CUDA device, ``cuda:1``
as much as ``cuda``: one matmul per projection, 3x faster decoding of 7B on a GPU; ``True`` / ``False``
as given), loads (:func:`affectgpt.model.artifact.load_model`) and returns the loaded model with the
settings it was loaded with. A bad setting or an artifact that cannot be loaded is an
:class:`ArtifactError`: bad input, one line, exit code 2 (out of memory stays what it is).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from affectgpt.core.errors import InputError, _out_of_memory_types, first_line
from affectgpt.model import artifact
from affectgpt.model.affectgpt import AffectGPT

MERGE_POLICIES = ("auto", True, False)


class ArtifactError(InputError, ValueError):
    """A device or merge setting the machine or the loader refuses, or an artifact that does not load."""


@dataclass(frozen=True)
class Opened:
    """A loaded artifact and the settings it was loaded with."""

    loaded: object  # affectgpt.model.artifact.Loaded
    device: str  # resolved: cpu, cuda or cuda:N
    merge_lora: bool  # whether LoRA was folded into the base weights
    seconds: float  # the load

    @property
    def model(self):
        return self.loaded.model

    @property
    def kind(self) -> str:
        return self.loaded.kind


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when CUDA is available, else ``cpu``; ``cpu``, ``cuda``, ``cuda:N`` as given,
    a CUDA device only where CUDA is available."""
    name = str(name)
    if name not in ("auto", "cpu", "cuda") and not name.startswith("cuda:"):
        raise ArtifactError(f"device={name}: expected auto, cpu or cuda")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ArtifactError(f"device={name} requested but no CUDA device is available")
    return name


def resolve_merge(policy, device: str) -> bool:
    """The merge policy on a resolved device: ``auto`` merges on every CUDA device (``cuda``, ``cuda:N``)."""
    if isinstance(policy, bool):
        return policy
    if policy != "auto":
        raise ArtifactError(f"merge_lora must be auto, true or false, got {policy!r}")
    return str(device).startswith("cuda")


def open_artifact(path: str | Path, device: str = "auto", dtype: str | None = None, merge_lora="auto",
                  trust_remote_code: bool = False, verify_hashes: bool = True) -> Opened:
    """Resolve the device and the merge policy, then load the checkpoint or export at ``path``."""
    try:
        artifact.artifact_kind(path)  # not an artifact at all: said before torch and the device are touched
    except ValueError as e:
        raise ArtifactError(str(e)) from None
    device = resolve_device(device)
    merge = resolve_merge(merge_lora, device)

    t0 = time.perf_counter()
    try:
        loaded = artifact.load_model(AffectGPT, path, device=device, dtype=dtype, merge_lora=merge,
                                     trust_remote_code=bool(trust_remote_code), verify_hashes=bool(verify_hashes))
    except _out_of_memory_types():
        raise
    except (OSError, ValueError, RuntimeError) as e:
        raise ArtifactError(f"{path}: cannot load ({first_line(e)})") from None
    return Opened(loaded, device, merge, time.perf_counter() - t0)
