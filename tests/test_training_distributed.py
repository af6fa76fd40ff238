"""A failing rank (torchrun, gloo, CPU) and DeepSpeed ZeRO-2 through Accelerate. Two processes matching one with
the same global batch: tests/test_multinode.py (two node groups, both launchers)."""

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
