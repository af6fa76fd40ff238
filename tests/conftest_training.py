"""Shared helpers for the training tests (imported by tests/test_training*.py, test_features.py, ...).

One small synthetic dataset (and its tiny random "pretrained" weights) per test session, under
pytest's base temp folder: every caller gets the same folder, generated once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["data.n_train=16", "data.n_val=2", "data.n_test=2", "trainer.batch_size=4", "trainer.warmup_steps=2",
         "trainer.standardize_samples=16", "eval.max_samples=2", "eval.max_new_tokens=2", "trainer.num_workers=0"]


def data_root(tmp_path_factory) -> Path:
    """The session's synthetic dataset + tiny weights (made on first call)."""
    from affectgpt.data.synthetic import ensure_dataset

    root = tmp_path_factory.getbasetemp() / "syn16"
    ensure_dataset(root, seed=0, n_train=16, n_val=2, n_test=2)
    return root


REFERENCE_STEPS = ["trainer.max_steps=8", "trainer.save_every=2", "trainer.keep_last=2", "features.shard_size=8"]


def cache_arg(data: Path) -> str:
    return f"features.cache_dir={data / 'features'}"


def reference_run(tmp_path_factory, data: Path) -> Path:
    """8 uninterrupted steps on the shared feature cache (run once per session, then reused)."""
    out = tmp_path_factory.getbasetemp() / "reference-run"
    if not (out / "checkpoints" / "final" / "COMPLETE").is_file():
        r = run(train_cmd(out, data, *REFERENCE_STEPS, cache_arg(data)))
        assert r.returncode == 0, r.stderr[-3000:]
    return out


def compose(output_dir: Path, data: Path, *overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose("train", overrides=[f"output_dir={output_dir}", f"data.root={data}", *SMALL, *overrides])


def env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT),
            "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


def train_cmd(output_dir: Path, data: Path, *overrides: str) -> list[str]:
    return [sys.executable, "train.py", f"output_dir={output_dir}", f"data.root={data}", *SMALL, *overrides]


def run(cmd: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=timeout)


def losses(output_dir: Path, name: str = "final") -> list[float]:
    state = json.loads((Path(output_dir) / "checkpoints" / name / "trainer_state.json").read_text())
    return [h["loss"] for h in state["history"] if "loss" in h]


def weights(output_dir: Path, name: str = "final") -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(output_dir) / "checkpoints" / name / "trainable.safetensors"))


def max_weight_diff(a: dict, b: dict) -> float:
    assert set(a) == set(b)
    return max(float((a[k] - b[k]).abs().max()) for k in a)
