"""A failing rank (torchrun, gloo, CPU) and DeepSpeed ZeRO-2 through Accelerate. Two processes matching one with
the same global batch: tests/recipe/test_multinode.py (two node groups, both launchers)."""

from __future__ import annotations

import json
import sys
import time

import pytest

from helpers import (
    REFERENCE_STEPS,
    cache_arg,
    losses,
    max_weight_diff,
    run,
    train_cmd,
    weights,
)

pytestmark = pytest.mark.integration

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def test_a_failing_rank_brings_the_other_down(tmp_path, data):
    rows = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    for row in rows:  # absolute media paths: the manifest lives elsewhere
        row["video"] = str(data / row["video"])
        if row.get("audio"):
            row["audio"] = str(data / row["audio"])
    rows[9]["subtitle"] = "word " * 3000  # leaves no room for the target: an error on whichever rank draws it
    bad = tmp_path / "train.jsonl"
    bad.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    t0 = time.time()
    r = run(TORCHRUN + train_cmd(tmp_path / "out", data, "trainer.max_steps=4", "trainer.batch_size=2",
                                 "trainer.standardize_samples=4", "data.kind=manifest", f"data.train_manifest={bad}",
                                 f"data.val_manifest={data / 'val.jsonl'}", "trainer.collective_timeout_s=120")[1:],
            timeout=240)
    assert r.returncode != 0
    assert time.time() - t0 < 200
    assert (
        f"sample {rows[9]['name']!r}" in r.stdout + r.stderr and "leaves no room for the target" in r.stdout + r.stderr
    )


def test_deepspeed_zero2_trains_saves_and_resumes(tmp_path, data, reference):
    """Single process through Accelerate's DeepSpeed plugin; "torch_adam": true needs no compiled optimizer."""
    pytest.importorskip("deepspeed")
    out = tmp_path / "ds"
    args = [*REFERENCE_STEPS, cache_arg(data), "trainer.deepspeed=conf/deepspeed/zero2.json"]
    r = run(train_cmd(out, data, *args, "trainer.stop_at_step=4"), timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    step4 = out / "checkpoints" / "step-4"
    assert (step4 / "deepspeed" / "state").is_dir() and not (step4 / "optimizer.pt").exists()
    r = run(train_cmd(out, data, *args, "trainer.resume=auto"), timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed from" in r.stdout + r.stderr
    a, b = losses(reference), losses(out)
    # DeepSpeed's AdamW (torch_adam) on ZeRO-2 partitions vs plain AdamW: same maths, other summation order.
    assert len(b) == 8 and max(abs(x - y) for x, y in zip(a, b, strict=False)) < 1e-4, (a, b)
    assert max_weight_diff(weights(reference), weights(out)) < 1e-4
    assert json.loads((out / "metrics.json").read_text())["exact"]["n"] == 2


def test_a_deepspeed_build_failure_says_why(monkeypatch):
    """DeepSpeed compiles its CPU ops on first use; under a path with a space torch's cpp_extension cannot (it writes
    the paths unquoted into its build file). The run ends with a line that says so, not as an internal error."""
    from affectgpt.core.errors import classify
    from affectgpt.recipe.distributed import deepspeed_build_failure

    failure = RuntimeError("Error building extension 'deepspeed_shm_comm': [1/1] c++ ... -L/tmp/ci run/.venv/lib")
    monkeypatch.setattr("sys.prefix", "/tmp/ci run/.venv")
    assert deepspeed_build_failure(failure) == (
        "DeepSpeed cannot compile its CPU ops under a path with a space (/tmp/ci run/.venv): install the virtual "
        "environment, and set TORCH_EXTENSIONS_DIR, under paths without spaces")
    monkeypatch.setattr("sys.prefix", "/opt/venv")
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", "/tmp/ext")
    message = deepspeed_build_failure(failure)
    assert message.startswith("DeepSpeed could not compile its CPU ops (a C++ compiler and Python's headers are "
                              "needed): Error building extension 'deepspeed_shm_comm'")
    from affectgpt.core.errors import RunError

    assert classify(RunError(message)) == (1, message)
