"""The two contracts a newcomer meets first: `python train.py ...` and `python infer.py ...`, as subprocesses."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(args, cwd=ROOT, **kw):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, **kw)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    # Relative paths from another working directory: the checkpoint must still load from anywhere.
    work = tmp_path_factory.mktemp("work")
    out, data = work / "run", work / "data" / "syn"
    r = run([str(ROOT / "train.py"), "output_dir=run", "data.root=data/syn", "seed=3", "trainer.max_steps=6",
             "trainer.save_every=3", "data.n_train=24", "data.n_val=4", "data.n_test=2", "trainer.batch_size=4",
             "eval.max_samples=4", "eval.max_new_tokens=8"], cwd=work)
    assert r.returncode == 0, r.stderr[-3000:]
    return out, data


def test_train_writes_the_documented_layout(trained):
    out, data = trained
    assert (out / "checkpoints" / "final" / "COMPLETE").is_file()
    assert (out / "checkpoints" / "step-3" / "trainable.safetensors").is_file()
    assert (out / "checkpoints" / "step-6" / "optimizer.pt").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["exact"]) == {"precision", "recall", "f1", "n"} and metrics["exact"]["n"] == 4
    assert 0.0 <= metrics["exact"]["f1"] <= 1.0
    assert "label" in metrics["scorer"]
    cfg = (out / "config.yaml").read_text()
    assert "seed: 3" in cfg and "max_steps: 6" in cfg
    assert f"root: {data}" in cfg  # made absolute
    state = json.loads((out / "checkpoints" / "final" / "trainer_state.json").read_text())
    assert state["step"] == 6 and state["samples_seen"] == 24
    assert (data / "test.jsonl").is_file()


def test_infer_prints_one_json_object(trained):
    out, data = trained
    clip = json.loads((data / "test.jsonl").read_text().splitlines()[0])["video"]
    r = run(["infer.py", f"checkpoint={out / 'checkpoints' / 'final'}", f"video={data / clip}",
             "subtitle=I went to the market.", "max_new_tokens=12"])
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stdout
    obj = json.loads(lines[0])
    assert obj["name"] == Path(clip).stem
    assert isinstance(obj["description"], str) and isinstance(obj["emotions"], list)


@pytest.mark.parametrize("kind", ["missing", "empty", "text"])
def test_infer_bad_video_exits_2_with_one_line(trained, tmp_path, kind):
    out, _ = trained
    video = tmp_path / "clip.mp4"
    if kind == "empty":
        video.write_bytes(b"")
    elif kind == "text":
        video.write_text("this is not a video\n")
    r = run(["infer.py", f"checkpoint={out / 'checkpoints' / 'final'}", f"video={video}"])
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(video) in lines[0] and "Traceback" not in r.stderr


GOOD_KINDS = {
    "mp4": dict(),
    "webm": dict(vcodec="libvpx-vp9", acodec="libopus", sample_rate=48000, fmt="webm"),
    "mkv": dict(),
    "mov": dict(),
    "avi": dict(vcodec="mpeg4", acodec="mp3", sample_rate=44100),
    "stereo48k": dict(sample_rate=48000, channels=2),
    "mono8k": dict(sample_rate=8000),
    "noaudio": dict(sample_rate=None),
    "audioonly": dict(vcodec=None, acodec="pcm_s16le"),
    "rotated": dict(rotation=90),
    "vfr": dict(pts_ms=[20 * i for i in range(15)] + [300 + 200 * i for i in range(15)]),
}
SUFFIX = {"webm": ".webm", "mkv": ".mkv", "mov": ".mov", "avi": ".avi", "audioonly": ".wav"}


@pytest.mark.parametrize("kind", sorted(GOOD_KINDS))
def test_infer_prints_json_for_every_good_kind_of_clip(trained, tmp_path, kind):
    from test_media import write_clip  # the PyAV writer of the media tests

    clip = write_clip(tmp_path / f"{kind}{SUFFIX.get(kind, '.mp4')}", size=(96, 64), **GOOD_KINDS[kind])
    out, _ = trained
    r = run(["infer.py", f"checkpoint={out / 'checkpoints' / 'final'}", f"video={clip}", "max_new_tokens=6"])
    assert r.returncode == 0, r.stderr[-2000:]
    obj = json.loads(r.stdout)
    assert obj["name"] == kind and isinstance(obj["emotions"], list)


def test_infer_truncated_clip_exits_2_with_one_line(trained, tmp_path):
    from test_media import write_clip

    full = write_clip(tmp_path / "full.mp4", n_frames=60, size=(96, 64)).read_bytes()
    clip = tmp_path / "truncated.mp4"
    clip.write_bytes(full[: len(full) // 2])
    out, _ = trained
    r = run(["infer.py", f"checkpoint={out / 'checkpoints' / 'final'}", f"video={clip}"])
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(clip) in lines[0]


def test_merged_lora_gives_the_same_greedy_json(trained):
    out, data = trained
    clip = data / json.loads((data / "test.jsonl").read_text().splitlines()[0])["video"]
    runs = [run(["infer.py", f"checkpoint={out / 'checkpoints' / 'final'}", f"video={clip}", "max_new_tokens=16",
                 f"merge_lora={m}"]) for m in ("false", "true")]
    assert all(r.returncode == 0 for r in runs), runs[-1].stderr[-2000:]
    assert json.loads(runs[0].stdout) == json.loads(runs[1].stdout)
    bad = run(["infer.py", f"checkpoint={out / 'checkpoints' / 'final'}", f"video={clip}", "merge_lora=maybe"])
    assert bad.returncode == 2 and "merge_lora" in bad.stderr
