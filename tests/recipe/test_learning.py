"""The tiny default learns, and from every modality.

- Stored reference losses (torchtune-style): a short default run from a fixed seed must give the
  losses recorded below.
- Modality ablation on the same run: removing the video brings the visual word to chance while
  the vocal word stays, and the reverse for audio; the trained model beats the untrained one and
  the best constant answer by stated margins.
- The ablation's scoring by hand, and its command line.

One short run (module fixture) serves every test that needs a trained model. The commands run in this process
(``run_in_process``: the same argv, exit code, stdout and stderr, and losses equal a subprocess's bit for bit),
except the ablation's bad-argument line, its one real process (exit code and stderr of ``python -m``).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from affectgpt.apps import ablation
from helpers import ROOT, env, losses, run_in_process

# ------------------------------------------------------------------------------------------- scoring by hand


def test_cue_scores_by_hand():
    gold = [("happy", "calm"), ("sad", "anxious"), ("calm",), ("angry", "anxious", "frustrated")]
    pred = [["happy", "calm"], ["happy", "anxious"], ["calm"], ["angry", "excited"]]
    s = ablation.cue_scores(pred, gold)
    # visual classes happy/sad/none/angry, one sample each: right on happy, none and angry
    assert s["visual"]["balanced_accuracy"] == pytest.approx(3 / 4) and s["visual"]["chance"] == 0.25
    assert s["visual"]["accuracy"] == 0.75 and s["visual"]["constant_accuracy"] == 0.25
    # vocal classes calm (2 samples, both right) and anxious (2 samples, one right)
    assert s["vocal"]["balanced_accuracy"] == pytest.approx((1 + 0.5) / 2) and s["vocal"]["chance"] == 0.5
    # frustrated: "no" 3/3 right, "yes" 0/1
    assert s["frustrated"]["balanced_accuracy"] == pytest.approx(0.5) and s["frustrated"]["accuracy"] == 0.75


def test_an_answer_that_ignores_the_clip_scores_chance():
    gold = [("happy", "calm")] * 5 + [("sad", "excited")] * 3 + [("anxious",)] * 2
    for constant in (["happy", "calm"], ["sad", "excited"], ["anxious"]):  # each names one class per family
        s = ablation.cue_scores([constant] * len(gold), gold)
        assert s["visual"]["balanced_accuracy"] == pytest.approx(s["visual"]["chance"]) == pytest.approx(1 / 3)
        assert s["vocal"]["balanced_accuracy"] == pytest.approx(1 / 3)
    several = ablation.cue_scores([["happy", "sad", "calm", "anxious"]] * len(gold), gold)
    assert several["visual"]["accuracy"] == 0 and several["vocal"]["accuracy"] == 0  # two words of a family: wrong


def test_best_constant_answer_by_hand():
    gold = [("happy", "calm")] * 3 + [("sad", "calm")]
    best = ablation.best_constant(gold)
    # {happy, calm}: P 0.875, R 0.875 beats {calm} (P 1, R 0.5 -> 0.667)
    assert best["emotions"] == ["calm", "happy"] and best["f1"] == pytest.approx(0.875)


def test_clue_sentences_of_a_synthetic_sample():
    from affectgpt.data.synthetic import _plan_split

    samples, _ = _plan_split(0, "val", 40, ROOT, 64, 10, 2.0, 16000)
    for s in samples:
        clues = ablation.clue_sentences(s)
        assert ("frustration" in clues) == ("frustrated" in s.emotions)
        found = {k: [o for o in options if o in s.description] for k, options in clues.items()}
        assert all(len(v) == 1 for v in found.values()), (s.description, found)  # the gold text has each once
    shares = ablation.clue_shares([s.description for s in samples], samples)
    assert all(v["share"] == 1.0 for v in shares.values())
    garbled = [s.description.replace("The face", "The fac") for s in samples]
    assert ablation.clue_shares(garbled, samples)["visual"]["share"] == 0.0


def test_conditions_use_the_path_of_a_clip_without_the_stream():
    from affectgpt.data.manifest import Sample

    plan = _tiny_plan()
    s = Sample("x", video=None, subtitle="Hello there.")
    for drop, (vision, audio, subtitle) in {
        "full": (True, True, "Hello there."),
        "video": (False, True, "Hello there."),
        "audio": (True, False, "Hello there."),
        "subtitle": (True, True, ""),
    }.items():
        (s2,), p = ablation.without([s], plan, drop)
        assert (p.has_vision, p.has_audio, s2.subtitle) == (vision, audio, subtitle)
    with pytest.raises(ValueError, match="unknown modality 'face'"):
        ablation.without([s], plan, "face")


def _tiny_plan():
    from affectgpt.data.collate import TokenPlan

    return TokenPlan(
        video_tokens=8,
        fusion_tokens=0,
        image_size=(64, 64),
        interpolation="bicubic",
        resize_mode="shortest",
        frames=8,
        audio_kind="qformer",
        audio_window=50,
        audio_stride=50,
        audio_queries_per_window=2,
        audio_fixed_tokens=0,
        audio_max_samples=16000 * 60,
    )


@pytest.mark.parametrize("argv, message", [
    (["manifest=m.jsonl"], "missing argument checkpoint=..."),
    (["checkpoint=c", "manifest=m", "drop=video,face"], "drop=face"),
    (["checkpoint=c", "manifest=m", "colour=red"], "argument 'colour=red'"),
    (["checkpoint=c", "manifest=m", "batch_size=two"], "batch_size=two"),
    (["checkpoint=c", "manifest=m", "task=caption"], "task=caption"),
])
def test_bad_arguments_are_named(argv, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        ablation.parse_args(argv)


def test_arguments():
    a = ablation.parse_args(["checkpoint=c", "manifest=m", "drop=audio, video", "output=o.json", "max_samples=5"])
    assert (a.checkpoint, a.manifest, a.drop, a.output, a.max_samples) == ("c", "m", ("audio", "video"), "o.json", 5)
    assert ablation.parse_args(["checkpoint=c", "manifest=m"]).drop == ("video", "audio", "subtitle")
    assert ablation.parse_args(["checkpoint=c", "manifest=m", "drop=video+subtitle,audio"]).drop == (
        "video+subtitle", "audio")
    with pytest.raises(ValueError, match="drop=video\\+face: expected some of video,audio,subtitle"):
        ablation.parse_args(["checkpoint=c", "manifest=m", "drop=video+face"])


# ------------------------------------------------------------------------------------------- a short default run
# The default config with fewer clips and steps; everything else (model, adapters, learning rates) as shipped.
SHORT = ["data.n_train=200", "data.n_val=60", "data.n_test=2", "trainer.max_steps=250", "eval.max_samples=2",
         "eval.max_new_tokens=4", "seed=0"]


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    out, data = base / "learning-run", base / "learning-data"
    if not (out / "checkpoints" / "final" / "COMPLETE").is_file():
        r = run_in_process(["train.py", f"output_dir={out}", f"data.root={data}", *SHORT])
        assert r.returncode == 0, r.stderr[-3000:]
    return out, data


@pytest.fixture(scope="module")
def report(short_run):
    """The labels-task ablation of the short run's final checkpoint on its validation split, plus
    the untrained model (same config, fresh adapters and LoRA)."""
    from affectgpt.data.manifest import read_manifest
    from affectgpt.runtime.inference import load_model

    out, data = short_run
    samples = read_manifest(data / "val.jsonl")
    model = load_model(out / "checkpoints" / "final").model
    # A consistent subtitle names one of the clip's words, and the trained model reads it: with the
    # subtitle kept, a video-blind model still beats chance on the visual word. So each stream is
    # removed together with the subtitle.
    rep = ablation.run_ablation(model, samples, drop=("video+subtitle", "audio+subtitle"), task="labels",
                                max_new_tokens=24)
    rep["untrained"] = ablation.evaluate_condition(ablation.untrained_copy(out / "checkpoints" / "final"), samples,
                                                   "full", task="labels", max_new_tokens=24)
    print(ablation.format_table(rep))
    return rep


# Losses of the short run above, recorded on the development machine (CPU float32, one thread per process:
# helpers.env). Single steps must match to 1e-4 (relative): a change anywhere in data, prompts,
# model or optimizer moves them (measured: zeroed audio tokens move step 1 by 3.3e-4, LoRA off by 1.9e-3 and
# step 20 by 16%). Windows of 50 steps must match to 5%: they catch what only shows once the
# model learns (a modality that stops carrying information raises the plateau).
REFERENCE_STEPS = {1: 6.99069, 2: 6.96642, 3: 6.92933, 5: 6.80071, 10: 6.56302, 20: 5.66377}
REFERENCE_WINDOWS = {(1, 50): 4.5896, (51, 100): 0.9213, (101, 150): 0.3431, (151, 200): 0.1964, (201, 250): 0.1233}


@pytest.mark.integration
def test_losses_match_the_stored_reference(short_run):
    got = losses(short_run[0])
    assert len(got) == 250
    for step, want in REFERENCE_STEPS.items():
        assert got[step - 1] == pytest.approx(want, rel=1e-4), (step, got[:20])
    for (a, b), want in REFERENCE_WINDOWS.items():
        mean = sum(got[a - 1 : b]) / (b - a + 1)
        assert mean == pytest.approx(want, rel=0.05), ((a, b), mean)


@pytest.mark.integration
def test_each_cue_disappears_with_its_modality(report):
    c = report["conditions"]
    full, no_video, no_audio = (c[k]["cues"] for k in ("full", "no_video+subtitle", "no_audio+subtitle"))
    acc = {
        k: {f: v[f]["balanced_accuracy"] for f in v} for k, v in (("full", full), ("nv", no_video), ("na", no_audio))
    }
    assert acc["full"]["visual"] >= 0.8 and acc["full"]["vocal"] >= 0.7, acc  # both cues learned (chance 0.25, 0.33)
    # no video: the visual word falls to chance, the vocal word keeps >= 80% of its accuracy; and the reverse
    assert abs(acc["nv"]["visual"] - no_video["visual"]["chance"]) <= 0.1, acc
    assert acc["nv"]["vocal"] >= 0.8 * acc["full"]["vocal"], acc
    assert abs(acc["na"]["vocal"] - no_audio["vocal"]["chance"]) <= 0.1, acc
    assert acc["na"]["visual"] >= 0.8 * acc["full"]["visual"], acc


@pytest.mark.integration
def test_trained_model_beats_the_untrained_one_and_the_best_constant_answer(report):
    f1 = report["conditions"]["full"]["label"]["f1"]
    assert f1 >= report["best_constant"]["f1"] + 0.3, (f1, report["best_constant"])
    assert f1 >= report["untrained"]["label"]["f1"] + 0.5, (f1, report["untrained"]["label"])


@pytest.mark.integration
# runpy runs a fresh copy of the module as __main__ while this file holds the imported one: expected here
@pytest.mark.filterwarnings("ignore:'affectgpt.apps.ablation' found in sys.modules:RuntimeWarning")
def test_ablation_command_line(short_run, tmp_path):
    out, data = short_run
    cmd = [
        "-m",
        "affectgpt.apps.ablation",
        f"checkpoint={out / 'checkpoints' / 'final'}",
        f"manifest={data / 'val.jsonl'}",
        "drop=subtitle",
        "task=labels",
        "max_samples=6",
        f"output={tmp_path / 'a.json'}",
    ]
    r = run_in_process(cmd)
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads((tmp_path / "a.json").read_text())
    assert list(rep["conditions"]) == ["full", "no_subtitle"] and rep["n"] == 6
    assert "no_subtitle" in r.stdout and "visual (chance)" in r.stdout
    bad = subprocess.run([sys.executable, *cmd[:4], "drop=face"], cwd=ROOT, env=env(), capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "error: drop=face: expected some of video,audio,subtitle"
    ]


@pytest.mark.integration
def test_timeline_of_a_long_video_finds_each_clip_and_its_emotions(short_run, tmp_path):
    """``infer.py timeline=true`` on 12 synthetic clips joined by 0.8-1.5 s silences: one row per clip,
    boundaries within 0.5 s, and the short run's emotion words per segment match the clips'
    (measured: 10 of 12 lists exact, word F1 0.93; the 1-hour version of this video, 1,142 clips: F1 0.85)."""
    from affectgpt.data.synthetic_long import write_long_video

    truth = write_long_video(tmp_path / "long.mp4", clips=12, seed=0)
    out = tmp_path / "timeline.jsonl"
    r = run_in_process(["infer.py", f"checkpoint={short_run[0] / 'checkpoints' / 'final'}",
                        f"video={tmp_path / 'long.mp4'}", "timeline=true", f"output={out}", "num_workers=0"])
    assert r.returncode == 0, r.stderr[-2000:]
    rows = sorted((json.loads(line) for line in out.read_text().splitlines()), key=lambda row: row["start"])
    assert len(rows) == len(truth)
    assert all(abs(a["start"] - t["start"]) <= 0.5 and abs(a["end"] - t["end"]) <= 0.5
               for a, t in zip(rows, truth, strict=True))
    hit = sum(len(set(a["emotions"]) & set(t["emotions"])) for a, t in zip(rows, truth, strict=True))
    precision = hit / max(1, sum(len(a["emotions"]) for a in rows))
    recall = hit / sum(len(t["emotions"]) for t in truth)
    f1 = 2 * precision * recall / max(1e-9, precision + recall)
    print(f"timeline word F1 {f1:.3f} (P {precision:.3f}, R {recall:.3f})")
    assert f1 >= 0.8, [(a["emotions"], t["emotions"]) for a, t in zip(rows, truth, strict=True)]
