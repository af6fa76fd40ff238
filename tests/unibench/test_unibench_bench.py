"""``python -m affectgpt.apps.bench`` end to end on the tiny checkpoint and tiny copies of the nine layouts:
answers for every set, an error row for a broken clip, resuming, two checkpoints, faces, data-parallel.
The single-process runs are in this process (``run_in_process``: same argv, exit code, stdout, stderr); real
processes where they are the point: two ranks under accelerate launch, and the bad arguments' exit code and
stderr."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from unibench_fixtures import NAMES, build_process_root

from helpers import ENV, ROOT, run_in_process

pytestmark = pytest.mark.integration

SMALL = ["check_sizes=false", "max_new_tokens=4", "batch_size=2", "num_workers=0", "device=cpu"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = build_process_root(tmp_path_factory.mktemp("bench-root"), faces_missing=("test_dia0_utt1",))
    (root / "sims-process" / "video" / "video_0010_0038.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated")
    return root


def bench(*args, timeout=600):
    """The command in a new process."""
    return subprocess.run([sys.executable, "-m", "affectgpt.apps.bench", *args], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def bench_here(*args):
    """The command in this process."""
    return run_in_process(["-m", "affectgpt.apps.bench", *args])


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def first_run(artifacts, root, tmp_path_factory):
    """Two artifacts (the checkpoint and its adapter export) on all nine sets."""
    out = tmp_path_factory.mktemp("bench") / "run"
    r = bench_here(f"checkpoint={artifacts['checkpoint']},{artifacts['adapter']}", f"root={root}", f"output={out}",
                   *SMALL)
    assert r.returncode == 0, r.stderr[-3000:]
    return out, r


def test_bench_runs_every_set_and_scores_two_checkpoints(first_run):
    out, r = first_run
    for tag in ("final", "adapter"):
        for name, names in NAMES.items():
            got = rows(out / "predictions" / tag / f"{name}.jsonl")
            assert [g["name"] for g in got] == names, (tag, name)  # gold order, one merged file
            bad = [g for g in got if g.get("error")]
            if name == "sims":
                assert [g["name"] for g in bad] == ["video_0010_0038"] and "video_0010_0038.mp4" in bad[0]["error"]
            else:
                assert not bad and all(isinstance(g["reason"], str) and g["reason"] for g in got), (tag, name)
        assert not list((out / "predictions" / tag).glob("*.rank*.jsonl"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["datasets"]) == list(NAMES) and metrics["labels"] == "rules"
    assert metrics["datasets"]["sims"]["per_checkpoint"]["final"]["errors"] == 1
    for d in metrics["datasets"].values():
        assert set(d["per_checkpoint"]) == {"final", "adapter"} and 0.0 <= d["best"]["score"] <= 1.0
    lines = r.stdout.splitlines()
    assert any(ln.startswith("final") for ln in lines) and any(ln.startswith("best") for ln in lines)
    assert "OV-MERD+" in lines[1] and lines[1].rstrip().endswith("Mean")
    # the same answers whichever artifact: a checkpoint and its adapter export
    pred = out / "predictions"
    assert all(rows(pred / "final" / f"{n}.jsonl") == rows(pred / "adapter" / f"{n}.jsonl") for n in NAMES)


def test_bench_resumes_without_generating_again(first_run, artifacts, root):
    out, _ = first_run
    before = {n: (out / "predictions" / "final" / f"{n}.jsonl").read_bytes() for n in NAMES}
    again = bench_here(f"checkpoint={artifacts['checkpoint']}", f"root={root}", f"output={out}", *SMALL, "score=false")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("0 written (0 errors), 2 already there") == 9, again.stderr[-3000:]
    assert before == {n: (out / "predictions" / "final" / f"{n}.jsonl").read_bytes() for n in NAMES}


def test_bench_faces_input_crops_a_missing_face_on_the_fly(artifacts, root, tmp_path):
    """A clip without a face file has its faces cropped from the video (dlib finds the drawn face once the
    32-px frame is enlarged for detection), and stderr says so; the other clips read their files."""
    out = tmp_path / "faces"
    r = bench_here(f"checkpoint={artifacts['checkpoint']}", f"root={root}", f"output={out}", "sets=meld,ovmerdplus",
                   "visual=faces", *SMALL)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "meld: visual=faces: 1 of 2 clips have no face file" in r.stderr, r.stderr[-3000:]
    assert "cropping their faces on the fly with dlib (test_dia0_utt1)" in r.stderr
    assert "ovmerdplus: visual=faces" not in r.stderr  # nested face files found
    assert all(g.get("reason") for g in rows(out / "predictions" / "final" / "meld.jsonl"))
    assert all(g.get("reason") for g in rows(out / "predictions" / "final" / "ovmerdplus.jsonl"))
    assert "meld: 2 written (0 errors)" in r.stderr


def test_bench_data_parallel_gives_one_merged_file(first_run, artifacts, root, tmp_path):
    """Two CPU processes under accelerate launch, one sample each per set: the same rows as one process."""
    out, _ = first_run
    accelerate = Path(sys.executable).parent / "accelerate"
    if not accelerate.is_file():
        pytest.skip("accelerate launcher not installed next to the interpreter")
    parallel = tmp_path / "parallel"
    r = subprocess.run([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                        "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "affectgpt.apps.bench",
                        f"checkpoint={artifacts['checkpoint']}", f"root={root}", "sets=mer2023,cmumosi", *SMALL,
                        f"output={parallel}"], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "final mer2023: 1 written" in r.stderr, r.stderr[-3000:]  # rank 0 ran half of the 2 clips: 2 processes
    for name in ("mer2023", "cmumosi"):
        assert rows(parallel / "predictions" / "final" / f"{name}.jsonl") == \
            rows(out / "predictions" / "final" / f"{name}.jsonl")
    assert not list((parallel / "predictions" / "final").glob("*.rank*"))


def test_bench_bad_arguments_exit_2_with_one_line(tmp_path):
    r = bench("checkpoint=/nonexistent", f"root={tmp_path}", f"output={tmp_path / 'o'}")
    assert r.returncode == 2 and r.stderr.strip() == "error: /nonexistent: no such folder"
    r = bench("root=x")
    assert r.returncode == 2 and "missing argument checkpoint=..." in r.stderr
    r = bench("checkpoint=a", "root=b", "output=c", "colour=blue")
    assert r.returncode == 2 and "unknown key 'colour' in conf/bench.yaml" in r.stderr
