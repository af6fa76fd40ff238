"""The two contracts a newcomer meets first: `python train.py ...` and `python infer.py ...`, as
subprocesses; the saved metrics and every kind of clip checked in process against the trained
checkpoint, and the other infer.py command lines run in this process (``run_in_process``: the same argv,
exit code, stdout and stderr, without 8 s of imports each). Bad clips (missing, empty, text, truncated) are
tested once, in test_infer.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import run_in_process, write_clip

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


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


def flat(tree: dict, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}"""
    out = {}
    for k, v in tree.items():
        out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


@pytest.fixture(scope="module")
def model(trained):
    """The final checkpoint, loaded in this process as infer.py loads it."""
    from affectgpt.runtime.inference import load_model

    out, _ = trained
    return load_model(out / "checkpoints" / "final")


def test_metrics_json_is_the_score_of_the_final_checkpoint_on_the_validation_clips(trained, model):
    """Generate again here from the saved checkpoint: the numbers training wrote must be these."""
    from omegaconf import OmegaConf

    from affectgpt.data.manifest import read_manifest
    from affectgpt.recipe.telemetry import evaluate_predictions
    from affectgpt.runtime.inference import predict

    out, data = trained
    metrics = json.loads((out / "metrics.json").read_text())

    cfg = OmegaConf.load(out / "config.yaml")
    samples = read_manifest(cfg.data.val_manifest)[: cfg.eval.max_samples or None]
    assert len(samples) == 4 and Path(cfg.data.val_manifest).parent == data
    preds = predict(model.model, samples, task="describe", batch_size=cfg.eval.batch_size,
                    max_new_tokens=cfg.eval.max_new_tokens)
    assert [p["name"] for p in preds] == [s.name for s in samples] and not any(p.get("error") for p in preds)
    again, saved = flat(evaluate_predictions(preds, samples)), flat(metrics)
    assert set(again) == set(saved)
    numbers = [k for k, v in saved.items() if isinstance(v, float)]
    assert {k: again[k] for k in numbers} == pytest.approx({k: saved[k] for k in numbers}, abs=1e-9), (again, saved)
    assert {k: v for k, v in again.items() if k not in numbers} == {k: v for k, v in saved.items() if k not in numbers}
    # Six steps inside the 30-step warmup leave a model that answers with an empty text: label F1 is 0
    # and there is no clue overlap, so what this pins is which predictions were scored, and how.
    assert saved["scorer.n_pred"] == 4 and saved["scorer.missing_pred"] == 0 and saved["n_errors"] == 0


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
def test_every_good_kind_of_clip_gives_a_row(model, tmp_path, kind):
    """What infer.py does with video=FILE, in this process: the one-frame input check, then one clip."""
    from affectgpt.data.manifest import Sample
    from affectgpt.data.media import load_media
    from affectgpt.runtime.inference import predict_one

    clip = write_clip(tmp_path / f"{kind}{SUFFIX.get(kind, '.mp4')}", size=(96, 64), **GOOD_KINDS[kind])
    load_media(clip, None, n_frames=1, max_audio_seconds=1.0)
    gen = {"max_new_tokens": 6, "do_sample": False, "temperature": 1.0, "top_p": 1.0, "num_beams": 1}
    row, _ = predict_one(model.model, Sample(name=clip.stem, video=clip, audio=None, subtitle=""), "describe", gen,
                         system=model.system)
    assert "error" not in row, row
    assert row["name"] == kind and isinstance(row["description"], str) and isinstance(row["emotions"], list)


def test_infer_cli_on_an_audio_only_file(trained, tmp_path):
    """The sweep above in-process; through the command line once (in this process: the process itself is
    test_infer_prints_one_json_object's), with the kind furthest from the generator's clips (a .wav given as
    video=: no frames at all)."""
    clip = write_clip(tmp_path / "audioonly.wav", size=(96, 64), **GOOD_KINDS["audioonly"])
    out, _ = trained
    r = run_in_process(["infer.py", f"checkpoint={out / 'checkpoints' / 'final'}", f"video={clip}", "max_new_tokens=6"])
    assert r.returncode == 0, r.stderr[-2000:]
    obj = json.loads(r.stdout)
    assert obj["name"] == "audioonly" and isinstance(obj["emotions"], list)


def test_merged_lora_gives_the_same_greedy_json(trained):
    out, data = trained
    clip = data / json.loads((data / "test.jsonl").read_text().splitlines()[0])["video"]
    runs = [run_in_process(["infer.py", f"checkpoint={out / 'checkpoints' / 'final'}", f"video={clip}",
                            "max_new_tokens=16", f"merge_lora={m}"]) for m in ("false", "true")]
    assert all(r.returncode == 0 for r in runs), runs[-1].stderr[-2000:]
    assert json.loads(runs[0].stdout) == json.loads(runs[1].stdout)
    bad = run_in_process(["infer.py", f"checkpoint={out / 'checkpoints' / 'final'}", f"video={clip}",
                          "merge_lora=maybe"])
    assert bad.returncode == 2 and "merge_lora" in bad.stderr
