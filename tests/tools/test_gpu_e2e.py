"""benchmarks/gpu_e2e.sh --dry-run: every command of the GPU end-to-end run, with tiny shapes on CPU,
so that a typo never costs a device minute. Also the table's checks on hand-made rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))


def test_checks_fail_on_a_bad_run():
    from gpu_e2e import Row, checks

    good = [
        Row("train mid, cached", "", 0, 1.0, losses=[3.0, 2.0]),
        Row("train mid, resume=auto", "", 0, 1.0, losses=[3.0, 2.0]),
        Row("infer one clip", "", 0, 1.0, note="JSON: 2 emotions"),
        Row("infer from the export", "", 0, 1.0, note="JSON: 1 emotions"),
    ]
    for r in good:
        r.first_loss, r.last_loss = (r.losses[0], r.losses[-1]) if r.losses else (None, None)
    assert all(ok for _, ok in checks(good))
    good[1].losses = [3.0, 2.1]  # resumed run drifted
    good[3].rc = 1
    verdict = dict(checks(good))
    assert not verdict["resumed losses equal the uninterrupted ones"] and not verdict["every command exits 0"]


@pytest.mark.gpu_rehearsal
def test_dry_run_rehearses_every_command(tmp_path):
    pytest.importorskip("deepspeed")
    env = {**os.environ, "WHEELS": "none", "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        ["bash", "benchmarks/gpu_e2e.sh", "--dry-run", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    report = json.loads((tmp_path / "gpu_e2e_dryrun.json").read_text())
    rows = {row["name"]: row for row in report["rows"]}
    assert r.returncode == 0, (r.stderr[-3000:], report)
    from gpu_e2e import plan

    assert list(rows) == [s.name for s in plan(True, tmp_path / "x")]
    assert all(report["checks"].values()), report["checks"]
    assert len(rows["train mid, cached"]["losses"]) == 4 and rows["train 7b, ZeRO-2"]["rc"] == 0
    assert rows["MER-UniBench runner"]["rc"] == 0  # skipped unnoticed while a stale path check hid it
    table = (tmp_path / "gpu_e2e_dryrun.md").read_text()
    assert "video decoder: " in table and "| infer manifest, batch 16 | 0 |" in table
