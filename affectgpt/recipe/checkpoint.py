"""Training checkpoints: ``checkpoints/step-N/`` and ``checkpoints/final/``.

A checkpoint folder holds ``trainable.safetensors`` (adapters, LoRA, fixed feature statistics),
``optimizer.pt`` and ``scheduler.pt`` (state dicts; under DeepSpeed the optimizer lives in
``deepspeed/`` instead, written by the engine), ``rng.json`` + ``rng_torch.pt`` (Python, NumPy
and torch generators of every rank), ``trainer_state.json`` (step, epoch, position in the epoch,
loss history) and ``config.yaml`` (the resolved config).

Atomicity: everything is written into ``.tmp-<name>`` and the folder is renamed when complete,
with ``COMPLETE`` written (and fsynced) last (``affectgpt.core.fileio``). ``COMPLETE`` lists every file of
the folder with its size, so a checkpoint that lost a file later (a partial copy, a hand-deleted
``optimizer.pt``) is not complete either, and ``resume=auto`` falls back to the previous whole one.
A process killed at any moment leaves either the previous checkpoints untouched or a ``.tmp-*``
folder (or a ``.<name>.old-*`` one being replaced or deleted) that ``resume=auto`` never picks and
the next run deletes.
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import yaml
from safetensors.torch import save_file

from affectgpt.core.config import DataConfig, FeaturesConfig, TrainerConfig
from affectgpt.core.errors import reading
from affectgpt.core.fileio import atomic_write, remove_dir, replace_dir
from affectgpt.core.model_config import ModelSchema

# The weights file and its reader belong to the artifact format (inference loads checkpoints too); the
# writer is here. Both names stay importable from this module.
from affectgpt.model.artifact import CHECKPOINT_WEIGHTS as WEIGHTS
from affectgpt.model.artifact import load_trainable  # noqa: F401

log = logging.getLogger("affectgpt.train")

COMPLETE = "COMPLETE"
DEEPSPEED_DIR = "deepspeed"
DEEPSPEED_TAG = "state"


# ---------------------------------------------------------------------------- RNG state
def rng_state() -> dict:
    """This process's generators: Python and NumPy as JSON-able lists, torch (and CUDA) as tensors."""
    py = random.getstate()
    np_state = np.random.get_state()
    state = {"python": [py[0], list(py[1]), py[2]],
             "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    v, inner, gauss = state["python"]
    random.setstate((v, tuple(inner), gauss))
    n = state["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _write_rng(folder: Path, states: list[dict]) -> None:
    """One entry per rank: JSON for Python/NumPy, a weights_only-loadable tensor file for torch."""
    (folder / "rng.json").write_text(json.dumps([{k: s[k] for k in ("python", "numpy")} for s in states]))
    tensors = {}
    for r, s in enumerate(states):
        tensors[f"torch_{r}"] = s["torch"]
        for i, c in enumerate(s.get("cuda", [])):
            tensors[f"cuda_{r}_{i}"] = c
    torch.save(tensors, folder / "rng_torch.pt")


def load_rng(folder: Path, rank: int, world: int) -> dict:
    """The generator state of ``rank``; a checkpoint from another world size is refused (its data
    shards and dropout streams would not line up)."""
    folder = Path(folder)
    with reading(folder / "rng.json", TypeError, ValueError):
        plain = json.loads((folder / "rng.json").read_text())
    if len(plain) != world:
        raise RuntimeError(f"{folder}: written by {len(plain)} process(es), resumed with {world}; exact resume "
                           f"needs the same number of processes")
    with reading(folder / "rng_torch.pt", RuntimeError, KeyError):  # a torch.load error names no file
        tensors = torch.load(folder / "rng_torch.pt", map_location="cpu", weights_only=True)
        state = dict(plain[rank], torch=tensors[f"torch_{rank}"])
    cuda = [tensors[k] for k in sorted(t for t in tensors if t.startswith(f"cuda_{rank}_"))]
    if cuda:
        state["cuda"] = cuda
    return state


# ---------------------------------------------------------------------------- writing
def temp_folder(folder: Path) -> Path:
    return Path(folder).parent / f".tmp-{Path(folder).name}"


def begin(folder: Path) -> Path:
    """A fresh temporary folder next to ``folder`` (main process only)."""
    tmp = temp_folder(folder)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def write_files(tmp: Path, trainable: dict[str, torch.Tensor], config_yaml: str, trainer_state: dict,
                rng_states: list[dict], optimizer=None, scheduler=None, tokenizer=None) -> None:
    """Everything but DeepSpeed's own files, into the temporary folder (main process only)."""
    save_file({k: v.detach().contiguous().cpu() for k, v in trainable.items()}, str(tmp / WEIGHTS),
              metadata={"format": "affectgpt-trainable", "step": str(trainer_state.get("step", 0))})
    if optimizer is not None:
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    if scheduler is not None:
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    _write_rng(tmp, rng_states)
    (tmp / "trainer_state.json").write_text(json.dumps(trainer_state, indent=1))
    (tmp / "config.yaml").write_text(config_yaml)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp / "tokenizer")


def commit(tmp: Path, folder: Path) -> Path:
    """Mark complete (fsynced; the marker lists every file and its size) and rename into place. An
    existing folder of that name (``final`` of an earlier run) is moved aside first and deleted after,
    so a kill in between still leaves one."""
    files = {p.relative_to(tmp).as_posix(): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()}
    with atomic_write(tmp / COMPLETE) as f:
        f.write(json.dumps({"files": files}, indent=0) + "\n")
    replace_dir(tmp, folder)
    return Path(folder)


def save_checkpoint(folder: Path, trainable: dict[str, torch.Tensor], config_yaml: str, trainer_state: dict,
                    optimizer=None, scheduler=None, tokenizer=None) -> Path:
    """Single-process convenience: write a complete checkpoint atomically."""
    tmp = begin(folder)
    write_files(tmp, trainable, config_yaml, trainer_state, [rng_state()], optimizer, scheduler, tokenizer)
    return commit(tmp, folder)


def remove_partial(output_dir: Path) -> list[Path]:
    """Delete the leftovers of a killed run (main process, before training): ``.tmp-*`` folders being
    written, ``.*.old-*`` folders being replaced or deleted."""
    root = Path(output_dir) / "checkpoints"
    gone = [*root.glob(".tmp-*"), *root.glob(".*.old-*")] if root.is_dir() else []
    for p in gone:
        shutil.rmtree(p, ignore_errors=True)
    return gone


# ---------------------------------------------------------------------------- finding
# What a checkpoint written before COMPLETE listed its files must hold (optimizer.pt or deepspeed/ besides).
LEGACY_FILES = (WEIGHTS, "config.yaml", "trainer_state.json", "rng.json", "rng_torch.pt", "scheduler.pt")


def missing_files(folder: Path) -> list[str]:
    """What keeps ``folder`` from being a whole checkpoint: files its ``COMPLETE`` lists that are absent or
    of another size (``name (N of M bytes)``); ``[COMPLETE]`` when there is no marker. Empty: complete."""
    folder = Path(folder)
    try:
        text = (folder / COMPLETE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return [COMPLETE]
    try:
        listed = json.loads(text)["files"]
    except (ValueError, KeyError, TypeError):  # the plain "ok" marker of older versions
        optimizer = "optimizer.pt" if not (folder / DEEPSPEED_DIR).is_dir() else DEEPSPEED_DIR
        return [n for n in (*LEGACY_FILES, optimizer) if not (folder / n).exists()]
    out = []
    for name, size in listed.items():
        path = folder / name
        if not path.is_file():
            out.append(name)
        elif path.stat().st_size != size:
            out.append(f"{name} ({path.stat().st_size} of {size} bytes)")
    return out


def is_complete(folder: Path) -> bool:
    return not missing_files(folder)


def step_folders(output_dir: Path) -> list[Path]:
    """Every ``step-N`` folder, whole or not, oldest first."""
    root = Path(output_dir) / "checkpoints"
    found = [(int(m.group(1)), p) for p in root.glob("step-*") if (m := re.fullmatch(r"step-(\d+)", p.name))]
    return [p for _, p in sorted(found)]


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Complete ``step-N`` folders, oldest first."""
    return [p for p in step_folders(output_dir) if is_complete(p)]


def resolve_resume(resume: str | None, output_dir: Path) -> Path | None:
    """``auto`` → newest complete checkpoint in output_dir (or None), with a warning naming each newer
    incomplete one it passed over; a path → that checkpoint, which must be complete."""
    if resume in (None, "", "none", "null", False):
        return None
    if resume == "auto":
        for path in reversed(step_folders(output_dir)):
            missing = missing_files(path)
            if not missing:
                return path
            log.warning("trainer.resume=auto: skipped %s, incomplete (missing %s); trying the previous checkpoint",
                        path, ", ".join(missing[:5]))
        return None
    path = Path(resume)
    missing = missing_files(path)
    if missing:
        raise FileNotFoundError(f"trainer.resume={resume}: not a complete checkpoint "
                                f"(missing {', '.join(missing[:5])})")
    return path


def resolve_init_from(init_from: str | None) -> Path | None:
    """``trainer.init_from``: a complete checkpoint (a training run's or ``python -m affectgpt.apps.convert``'s)
    whose trainable weights start a new run; None when unset."""
    if init_from in (None, "", "none", "null", False):
        return None
    path = Path(init_from)
    if not is_complete(path):
        raise FileNotFoundError(f"trainer.init_from={init_from}: not a complete checkpoint "
                                f"(missing {COMPLETE} or {WEIGHTS})")
    return path


def prune_checkpoints(output_dir: Path, keep_last: int) -> None:
    """Keep the newest ``keep_last`` complete ``step-N`` folders (0 keeps all)."""
    if keep_last <= 0:
        return
    for p in list_checkpoints(output_dir)[:-keep_last]:
        remove_dir(p)  # a kill during the deletion never leaves a half-deleted "complete" folder


# ---------------------------------------------------------------------------- reading
def load_optimizer_scheduler(folder: Path, optimizer=None, scheduler=None) -> None:
    """Restore the plain-PyTorch optimizer and scheduler (``torch.load(weights_only=True)``)."""
    folder = Path(folder)
    if optimizer is not None:
        path = folder / "optimizer.pt"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing (a DeepSpeed checkpoint cannot resume a run without DeepSpeed)")
        with reading(path, RuntimeError, KeyError, ValueError):
            optimizer.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    if scheduler is not None:
        with reading(folder / "scheduler.pt", RuntimeError, KeyError, ValueError):
            scheduler.load_state_dict(torch.load(folder / "scheduler.pt", map_location="cpu", weights_only=True))


def load_trainer_state(folder: Path) -> dict:
    with reading(Path(folder) / "trainer_state.json"):
        return json.loads((Path(folder) / "trainer_state.json").read_text())


# ---------------------------------------------------------------------------- DeepSpeed
def save_deepspeed_state(engine, tmp: Path) -> None:
    """The engine's optimizer partitions (every rank writes its own), without the frozen weights."""
    engine.save_checkpoint(str(Path(tmp) / DEEPSPEED_DIR), tag=DEEPSPEED_TAG, exclude_frozen_parameters=True)


def load_deepspeed_state(engine, folder: Path) -> None:
    """Restore the engine's optimizer state. DeepSpeed reads its own files with
    ``torch.load(weights_only=False)`` (they pickle Python objects); that is inside DeepSpeed and
    cannot be changed from here. Its module file holds only trainable tensors, hence
    ``load_module_strict=False``: the strict check is the caller's ``load_trainable_state_dict``."""
    path = Path(folder) / DEEPSPEED_DIR
    if not path.is_dir():
        raise FileNotFoundError(
            f"{path}: missing; {folder} was written without DeepSpeed and cannot resume its optimizer"
        )
    loaded, _ = engine.load_checkpoint(str(path), tag=DEEPSPEED_TAG, load_module_strict=False,
                                       load_optimizer_states=True, load_lr_scheduler_states=False)
    if loaded is None:
        raise RuntimeError(f"{path}: DeepSpeed found no checkpoint with tag {DEEPSPEED_TAG!r}")



# ---------------------------------------------------------------------------- resume rules
class ResumeRefused(ValueError):
    """A resume that would not continue the run exactly, or would unpickle a file it has no reason to trust."""


# The config keys (dotted; a key covers everything under it) that may differ between a checkpoint and the
# run resuming it: when and where things are written, logged or evaluated, and when the run stops. None of
# them changes a number the next training step computes, except max_steps, which the cosine schedule reads
# (extending a run is the point of changing it; docs/safety.md says what that costs).
# An allow-list rather than a list of forbidden keys: a key someone adds to the config later is compared
# until it is judged harmless here, so the mistake this can make is a refusal that names the key, never a
# silently inexact resume.
RESUME_MAY_CHANGE = (
    "output_dir",
    "trainer.max_steps", "trainer.resume", "trainer.save_every", "trainer.keep_last", "trainer.stop_at_step",
    "trainer.stop_after_minutes", "trainer.log_every", "trainer.eval_every", "trainer.max_bad_steps",
    "trainer.collective_timeout_s", "trainer.trust_pickle",
    "eval",  # evaluation restores every generator it touches
    "wandb",
    "data.max_bad_fraction",  # only when to give up
    "features.extract", "features.batch_size", "features.splits",  # how a missing cache is filled, not what it holds
)


def _flatten(d, prefix: str = "") -> dict:
    if not isinstance(d, dict):
        return {prefix: d}
    out = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _schema_defaults() -> dict:
    """The keys a checkpoint saved by an earlier release may lack (the schema fills them in now: the ``model``
    group's fields, and ``data``/``trainer``/``features`` options added since, such as ``data.subtitle``), with
    their defaults, which are what that release did."""
    return _flatten({"model": asdict(ModelSchema()), "data": asdict(DataConfig()), "trainer": asdict(TrainerConfig()),
                     "features": asdict(FeaturesConfig())})


def resume_changes(saved: dict, current: dict, may_change=RESUME_MAY_CHANGE) -> list[str]:
    """``key: A in the checkpoint, B now`` for each key outside ``may_change`` whose value differs; a key the
    checkpoint lacks is unchanged where it now holds the schema's default (what the release that wrote it did)."""
    a, b = _flatten(saved), _flatten(current)
    absent, defaults = object(), _schema_defaults()
    out = []
    for key in sorted(set(a) | set(b)):
        if any(key == k or key.startswith(k + ".") for k in may_change):
            continue
        x, y = a.get(key, absent), b.get(key, absent)
        if x is absent and key in defaults and y == defaults[key]:
            continue
        if x != y:
            show = ["(absent)" if v is absent else json.dumps(v) for v in (x, y)]
            out.append(f"{key}: {show[0]} in the checkpoint, {show[1]} now")
    return out


def check_resume(folder: Path, current: dict, output_dir: Path, deepspeed: bool, trust_pickle: bool) -> None:
    """Refuse (ResumeRefused) a resume from ``folder`` whose config differs from ``current`` outside
    RESUME_MAY_CHANGE, and, under DeepSpeed, one that would unpickle a ``deepspeed/`` folder this
    output_dir did not hold, unless ``trust_pickle``."""
    folder = Path(folder)
    try:
        saved = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise ResumeRefused(f"{folder / 'config.yaml'}: unreadable ({e})") from None
    changes = resume_changes(saved if isinstance(saved, dict) else {}, current)
    if changes:
        raise ResumeRefused(f"trainer.resume={folder}: the run's config differs from the checkpoint's in what an exact "
                            f"resume needs: {'; '.join(changes[:12])}{' ...' if len(changes) > 12 else ''}. Resume "
                            f"with the checkpoint's values, or start a new run in another output_dir")
    if deepspeed and (folder / DEEPSPEED_DIR).is_dir() and not trust_pickle:
        own = Path(output_dir).resolve() / "checkpoints"
        if own not in folder.resolve().parents:
            raise ResumeRefused(
                f"{folder / DEEPSPEED_DIR}: DeepSpeed reads its optimizer state with pickle, which can run code, and "
                f"this checkpoint is not one of output_dir's ({own}); add trainer.trust_pickle=true if you trust "
                f"where it came from")
