"""Training checkpoints: ``checkpoints/step-N/`` and ``checkpoints/final/``.

A checkpoint folder holds ``trainable.safetensors`` (adapters, LoRA, fixed feature statistics),
``optimizer.pt`` and ``scheduler.pt`` (state dicts), ``rng.json`` + ``rng_torch.pt``,
``trainer_state.json`` (step, epoch, position in the epoch) and ``config.yaml`` (the resolved
config). It is written to ``.tmp-*`` and renamed when complete, with ``COMPLETE`` written last,
so a process killed mid-write leaves no folder that ``resume=auto`` would pick.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch

COMPLETE = "COMPLETE"
WEIGHTS = "trainable.safetensors"


def rng_state() -> tuple[dict, dict]:
    py = random.getstate()
    np_state = np.random.get_state()
    plain = {"python": [py[0], list(py[1]), py[2]],
             "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])]}
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors["cuda"] = torch.cuda.get_rng_state_all()
    return plain, tensors


def set_rng_state(plain: dict, tensors: dict) -> None:
    v, state, gauss = plain["python"]
    random.setstate((v, tuple(state), gauss))
    n = plain["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(tensors["torch"])
    if "cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(tensors["cuda"])


def save_checkpoint(folder: Path, trainable: dict[str, torch.Tensor], config_yaml: str, trainer_state: dict,
                    optimizer=None, scheduler=None, tokenizer=None, extra_files: dict[str, str] | None = None) -> Path:
    """Write a complete checkpoint atomically (temporary folder + rename)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    tmp = folder.parent / f".tmp-{folder.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in trainable.items()}, str(tmp / WEIGHTS),
              metadata={"format": "affectgpt-trainable", "step": str(trainer_state.get("step", 0))})
    if optimizer is not None:
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    if scheduler is not None:
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    plain, tensors = rng_state()
    (tmp / "rng.json").write_text(json.dumps(plain))
    torch.save(tensors, tmp / "rng_torch.pt")
    (tmp / "trainer_state.json").write_text(json.dumps(trainer_state, indent=1))
    (tmp / "config.yaml").write_text(config_yaml)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp / "tokenizer")
    for name, text in (extra_files or {}).items():
        (tmp / name).write_text(text)
    with open(tmp / COMPLETE, "w") as f:
        f.write("ok\n")
        f.flush()
        os.fsync(f.fileno())
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


def is_complete(folder: Path) -> bool:
    return (Path(folder) / COMPLETE).is_file() and (Path(folder) / WEIGHTS).is_file()


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Complete ``step-N`` folders, oldest first."""
    root = Path(output_dir) / "checkpoints"
    found = []
    for p in root.glob("step-*"):
        m = re.fullmatch(r"step-(\d+)", p.name)
        if m and is_complete(p):
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def resolve_resume(resume: str | None, output_dir: Path) -> Path | None:
    """``auto`` → newest complete checkpoint in output_dir (or None); a path → that checkpoint."""
    if resume in (None, "", "none", "null", False):
        return None
    if resume == "auto":
        found = list_checkpoints(output_dir)
        return found[-1] if found else None
    path = Path(resume)
    if not is_complete(path):
        raise FileNotFoundError(f"{path}: not a complete checkpoint (missing {COMPLETE} or {WEIGHTS})")
    return path


def prune_checkpoints(output_dir: Path, keep_last: int) -> None:
    if keep_last <= 0:
        return
    for p in list_checkpoints(output_dir)[:-keep_last]:
        shutil.rmtree(p, ignore_errors=True)


def load_trainable(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    path = Path(folder) / WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no trainable weights in checkpoint {folder}")
    return load_file(str(path))


def load_training_state(folder: Path, optimizer=None, scheduler=None) -> dict:
    """Restore optimizer, scheduler and RNG (``torch.load(weights_only=True)``); return trainer state."""
    folder = Path(folder)
    if optimizer is not None:
        optimizer.load_state_dict(torch.load(folder / "optimizer.pt", map_location="cpu", weights_only=True))
    if scheduler is not None:
        scheduler.load_state_dict(torch.load(folder / "scheduler.pt", map_location="cpu", weights_only=True))
    set_rng_state(json.loads((folder / "rng.json").read_text()), torch.load(folder / "rng_torch.pt", weights_only=True))
    return json.loads((folder / "trainer_state.json").read_text())
