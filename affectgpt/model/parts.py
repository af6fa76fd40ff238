"""The trainable parts of AffectGPT: what each one trains, saves and ships, answered in one table.

A part is a top-level child module of the model. Every question about trainable state walks
the model's children once (``parts``) and reads the part's row:

- ``trained``: its parameters that require grad are trained (one optimizer group of the part's
  name, built by :mod:`affectgpt.recipe.groups`); they are saved in a training checkpoint;
- ``buffers``: its persistent buffers are saved with the trainable state too (the adapters'
  fixed feature statistics, the embedding rows added for placeholder tokens);
- ``bundled``: an export's ``adapters.safetensors`` holds its whole ``state_dict`` (trained or
  not: an export must not depend on a seed to rebuild a frozen adapter); the LLM travels as a
  peft adapter or merged weights instead (:mod:`affectgpt.runtime.export`).

The frozen encoders (``vision``, ``audio``) are no part: nothing of theirs is trained or saved.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Part:
    name: str  # the model's attribute, the key prefix of its tensors, its optimizer group
    trained: bool
    buffers: bool
    bundled: bool


# Optimizer groups come in this order (then "llm_extra", the LLM's fully trained modules).
PARTS = (
    Part("video_adapter", trained=True, buffers=True, bundled=True),
    Part("audio_adapter", trained=True, buffers=True, bundled=True),
    Part("fusion", trained=True, buffers=True, bundled=True),
    Part("llm", trained=True, buffers=False, bundled=False),
    Part("added_rows", trained=False, buffers=True, bundled=True),
)
PART_BY_NAME = {p.name: p for p in PARTS}
TRAINED = tuple(p.name for p in PARTS if p.trained)
BUNDLED = tuple(p.name for p in PARTS if p.bundled)


def parts(model: nn.Module) -> Iterator[tuple[Part, nn.Module]]:
    """The model's parts that exist (an absent fusion or added-rows module is None), in the order the
    model registered them, which is the order of its ``state_dict``."""
    for name, module in model.named_children():
        if name in PART_BY_NAME:
            yield PART_BY_NAME[name], module


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every trained parameter plus the persistent buffers of the parts that save them, by full name."""
    out = {}
    for part, module in parts(model):
        keep = {n for n, p in module.named_parameters() if p.requires_grad and part.trained}
        if part.buffers:
            keep |= {n for n, _ in module.named_buffers()}
        out.update({f"{part.name}.{k}": t.detach() for k, t in module.state_dict().items() if k in keep})
    return out


def load_trainable_state(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Strict: the keys must equal ``trainable_state``'s (differences listed, with ``source``), the
    shapes too. Added rows that changed are written into the LLM's tables."""
    own = model.state_dict()
    expected = set(trainable_state(model))
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise RuntimeError(
            f"{source}: trainable weights do not match the model: missing={missing[:20]} "
            f"(+{max(0, len(missing) - 20)}) unexpected={unexpected[:20]} (+{max(0, len(unexpected) - 20)})"
        )
    bad = [k for k in state if own[k].shape != state[k].shape]
    if bad:
        raise RuntimeError(
            f"{source}: shape mismatch for {[(k, tuple(state[k].shape), tuple(own[k].shape)) for k in bad[:10]]}"
        )
    # Added rows equal to the built ones need no write (so a ZeRO-3 resume never touches the partitioned table).
    rows_differ = any(not torch.equal(own[k], v.to(own[k].device, own[k].dtype)) for k, v in state.items()
                      if k.startswith("added_rows."))
    with torch.no_grad():
        for k, v in state.items():
            own[k].copy_(v)
    if rows_differ:
        model.added_rows.write(model.llm)


def bundle_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every tensor of the bundled parts' ``state_dict`` (an export's ``adapters.safetensors``), on CPU."""
    return {f"{part.name}.{k}": v.detach().contiguous().cpu()
            for part, module in parts(model) if part.bundled for k, v in module.state_dict().items()}


def load_bundle_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Strict load of ``bundle_state``: every key present, nothing extra, shapes equal."""
    present = {part.name: module for part, module in parts(model)}
    for name in BUNDLED:
        prefix = name + "."
        part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if name not in present:
            if part:
                raise RuntimeError(f"{source}: holds {name} weights but the model config has no {name}")
            continue
        try:
            present[name].load_state_dict(part, strict=True)
        except RuntimeError as e:
            raise RuntimeError(f"{source}: {name} weights do not match the model: {str(e).splitlines()[0]} "
                               f"{' '.join(ln.strip() for ln in str(e).splitlines()[1:])[:600]}") from None
    stray = sorted(k for k in state if k.split(".")[0] not in BUNDLED)
    if stray:
        raise RuntimeError(f"{source}: unexpected tensors {stray[:10]}")
