"""``infer.py`` as a user runs it: one clip from a checkpoint or either export, clips the generator did not make,
bad files, and resumable manifest runs with error rows. The bad files (exit code 2, one stderr line, nothing on stdout)
and the manifest run killed mid-way keep a process of their own; the other runs, the resumed one included, take this
process (``run_in_process``: the same argv, exit code, stdout and stderr)."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import ENV, ROOT, run_in_process
from helpers import run_python as run

pytestmark = pytest.mark.integration


def manifest_rows(artifacts, k=6):
    manifest = artifacts["data"] / "test.jsonl"
    return [json.loads(line) for line in manifest.read_text().splitlines()[:k]]


def infer(checkpoint, *args):
    return run(["infer.py", f"checkpoint={checkpoint}", *args])


def infer_here(checkpoint, *args):
    """``infer`` in this process (the same argv, exit code, stdout and stderr), where the answer is the point:
    the bad files and the killed manifest run below keep a process of their own."""
    return run_in_process(["infer.py", f"checkpoint={checkpoint}", *args])


def one_json(r) -> dict:
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stdout
    return json.loads(lines[0])


def test_checkpoint_adapter_export_and_merged_export_give_the_same_json(artifacts):
    clip = artifacts["data"] / manifest_rows(artifacts)[0]["video"]
    args = [f"video={clip}", "subtitle=I went to the market.", "max_new_tokens=12"]
    first = infer_here(artifacts["checkpoint"], *args, "profile=true")
    obj = one_json(first)
    assert set(obj) == {"name", "description", "emotions", "task"} and obj["task"] == "describe"
    assert obj["name"] == clip.stem and len(obj["description"]) > 0
    for key in ("load", "decode", "encode", "prefill", "generate"):
        assert f"  {key} " in first.stderr, first.stderr[-2000:]
    assert "12 tokens" in first.stderr
    for kind in ("adapter", "merged"):
        assert one_json(infer_here(artifacts[kind], *args)) == obj, kind


def test_a_clip_the_generator_did_not_make(artifacts, tmp_path):
    """Another size (160x90), frame rate (12.5), sample rate (48 kHz), stereo; subtitle from a file."""
    from affectgpt.data.synthetic import write_clip

    t = np.arange(int(2.4 * 48000)) / 48000
    audio = np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.2 * np.sin(2 * np.pi * 330 * t)], 1).astype(np.float32)
    frames = np.random.default_rng(0).integers(0, 256, (30, 90, 160, 3), dtype=np.uint8)
    clip = write_clip(tmp_path / "foreign.mp4", frames, audio, fps=12.5, sample_rate=48000, audio_channels=2)
    sub = tmp_path / "sub.txt"
    sub.write_text("Je suis fatigué.\n", encoding="utf-8")
    obj = one_json(
        infer_here(artifacts["merged"], f"video={clip}", f"subtitle_file={sub}", "task=labels", "max_new_tokens=8")
    )
    assert obj["name"] == "foreign" and obj["task"] == "labels" and isinstance(obj["emotions"], list)


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "truncated"])
def test_bad_files_exit_2_with_one_stderr_line(artifacts, tmp_path, kind):
    video = tmp_path / "clip.mp4"
    if kind == "empty":
        video.write_bytes(b"")
    elif kind == "text":
        video.write_text("this is not a video\n")
    elif kind == "truncated":
        good = (artifacts["data"] / manifest_rows(artifacts)[0]["video"]).read_bytes()
        video.write_bytes(good[: len(good) // 2])
    r = infer(artifacts["adapter"], f"video={video}")
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"error: {video}: ") and "Traceback" not in r.stderr


def test_bad_options_fail_before_the_model_loads(artifacts, tmp_path):
    clip = artifacts["data"] / manifest_rows(artifacts)[0]["video"]
    r = infer_here(artifacts["adapter"], f"video={clip}", "temperature=0.5")
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "error: temperature=0.5 has no effect with greedy decoding; add do_sample=true"]
    r = infer_here(tmp_path, f"video={clip}")
    assert r.returncode == 2 and "neither a training checkpoint" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def _manifest(artifacts, tmp_path) -> tuple[Path, list[str]]:
    """Six test clips (absolute paths) plus a corrupt one in the middle."""
    rows = manifest_rows(artifacts)
    for r in rows:
        r["video"] = str(artifacts["data"] / r["video"])
    bad = tmp_path / "corrupt.mp4"
    bad.write_text("not a video")
    rows.insert(3, {"name": "corrupt", "video": str(bad), "subtitle": "", "emotions": ["happy"]})
    path = tmp_path / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, [r["name"] for r in rows]


def test_manifest_run_resumes_after_a_kill_and_records_a_bad_clip(artifacts, tmp_path):
    manifest, names = _manifest(artifacts, tmp_path)
    out = tmp_path / "pred.jsonl"
    args = [sys.executable, "infer.py", f"checkpoint={artifacts['checkpoint']}", f"manifest={manifest}",
            f"output={out}", "batch_size=1", "num_workers=1", "max_new_tokens=24"]
    proc = subprocess.Popen(args, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not (out.is_file() and out.read_text().count("\n") >= 1):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = out.read_text().count("\n")
    assert 1 <= before < len(names), f"the kill came too late to test resuming ({before} rows)"
    with out.open("a") as f:  # a write torn by the kill: half a row, no newline
        f.write('{"name": "syn_test_0')

    r = run_in_process(args[1:] + ["score=true", "batch_size=2"])  # the resumed run: its answer is the point
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"{before} already in" in r.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r_["name"] for r_ in rows) == sorted(names)  # each name exactly once
    errors = [r_ for r_ in rows if r_.get("error")]
    assert [e["name"] for e in errors] == ["corrupt"] and "corrupt.mp4" in errors[0]["error"]
    assert all(
        isinstance(r_["description"], str) and isinstance(r_["emotions"], list) for r_ in rows if not r_.get("error")
    )
    metrics = json.loads(out.with_suffix(".metrics.json").read_text())
    assert metrics["n_gold"] == len(names) and metrics["missing_pred"] == 1  # the corrupt clip has no prediction
    assert "M-avg F1" in r.stderr
