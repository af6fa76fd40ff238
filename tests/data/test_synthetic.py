"""The synthetic EMER dataset: real H.264/AAC files, deterministic, balanced, and each cue
recoverable from its own modality (numbers measured on decoded media)."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from affectgpt.data import synthetic as syn
from affectgpt.data.manifest import read_manifest

SMALL = dict(n_train=12, n_val=6, n_test=6)
# big enough to measure separability and balance, small enough for ~2 s of generation
MEDIUM = dict(n_train=120, n_val=40, n_test=20)


@pytest.fixture(scope="module")
def medium(tmp_path_factory) -> dict[str, list]:
    root = tmp_path_factory.mktemp("syn") / "data"
    manifests = syn.ensure_dataset(root, seed=3, **MEDIUM)
    return {split: read_manifest(path) for split, path in manifests.items()}


def first_frame(path: Path) -> np.ndarray:
    import decord
    return decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)[0].asnumpy()


def decoded_audio(path: Path, sample_rate: int = 16000, mono: bool = True) -> np.ndarray:
    import decord
    return decord.AudioReader(str(path), ctx=decord.cpu(0), sample_rate=sample_rate, mono=mono)[:].asnumpy()


def test_labels_and_conclusion_wording():
    assert syn.labels_for("happy", "calm") == ("happy", "calm")
    assert syn.labels_for(None, "excited") == ("excited",)
    assert syn.labels_for("angry", "anxious") == ("angry", "anxious", "frustrated")
    assert syn.labels_for("sad", "anxious") == ("sad", "anxious")
    assert syn.conclusion(("calm",)) == "Therefore, the person's emotional state is calm."
    assert syn.conclusion(("happy", "anxious")).endswith("is happy and anxious.")
    assert syn.conclusion(("angry", "anxious", "frustrated")).endswith("is angry, anxious and frustrated.")
    assert syn.cues_of(("angry", "anxious", "frustrated")) == ("angry", "anxious")
    with pytest.raises(ValueError, match="audio cue"):
        syn.labels_for("happy", "sleepy")


def test_same_seed_same_data_other_seed_differs(tmp_path):
    a = syn.generate(tmp_path / "a", seed=7, **SMALL)
    b = syn.generate(tmp_path / "b", seed=7, workers=1, **SMALL)
    c = syn.generate(tmp_path / "c", seed=8, **SMALL)
    for split in syn.SPLITS:
        assert a[split].read_bytes() == b[split].read_bytes()
        assert a[split].read_bytes() != c[split].read_bytes()
    clip = "clips/syn_train_00001.mp4"
    fa, fb, fc = (first_frame(tmp_path / d / clip) for d in "abc")
    assert np.array_equal(fa, fb)
    assert not np.array_equal(fa, fc)
    assert np.array_equal(decoded_audio(tmp_path / "a" / clip), decoded_audio(tmp_path / "b" / clip))
    # the encoders are single-threaded, so even the file bytes repeat
    assert (tmp_path / "a" / clip).read_bytes() == (tmp_path / "b" / clip).read_bytes()


def test_files_are_h264_aac_and_decode(medium):
    import av
    import decord
    sample = medium["val"][0]
    with av.open(str(sample.video)) as container:
        kinds = {s.type: s.codec_context.name for s in container.streams}
        vstream = container.streams.video[0]
        assert (vstream.codec_context.format.name, vstream.width, vstream.height) == ("yuv420p", 64, 64)
        assert container.streams.audio[0].rate == 16000
    assert kinds == {"video": "h264", "audio": "aac"}
    vr = decord.VideoReader(str(sample.video), ctx=decord.cpu(0))
    assert (len(vr), *vr[0].shape) == (20, 64, 64, 3)
    assert vr.get_avg_fps() == pytest.approx(10.0)
    n = decoded_audio(sample.video).shape[1]
    assert 32000 <= n <= 32000 + 2048  # AAC adds encoder priming / a padded last frame


def test_manifest_text_contract(medium):
    for split, samples in medium.items():
        for s in samples:
            assert s.name.startswith(f"syn_{split}_") and s.video.is_file()
            assert s.description.endswith(syn.conclusion(s.emotions)), s.name
            assert s.description.count("Therefore") == 1
            assert 35 <= len(s.description.split()) <= 80, s.name
            assert f'"{s.subtitle}"' in s.description
            visual, audio = syn.cues_of(s.emotions)
            assert s.emotions == syn.labels_for(visual, audio)


def test_subtitle_shares_and_not_a_shortcut(medium):
    for _split, samples in medium.items():
        kinds = collections.Counter(syn.subtitle_kind(s.subtitle, s.emotions)[0] for s in samples)
        n = len(samples)
        assert kinds["neutral"] == round(n * 0.5)
        assert abs(kinds["misleading"] - n / 4) <= 1 and abs(kinds["consistent"] - n / 4) <= 1
    # best subtitle-only predictor: the most common label set per subtitle in train
    by_subtitle = collections.defaultdict(collections.Counter)
    for s in medium["train"]:
        by_subtitle[s.subtitle][s.emotions] += 1
    held_out = medium["val"] + medium["test"]
    hits = sum(by_subtitle[s.subtitle].most_common(1)[0][0] == s.emotions
               for s in held_out if s.subtitle in by_subtitle)
    assert hits / len(held_out) < 0.25
    # an emotional subtitle names a true label only half of the time
    hinted = [syn.subtitle_kind(s.subtitle, s.emotions) for s in medium["train"]]
    emotional = [k for k, _ in hinted if k != "neutral"]
    assert 0.4 <= emotional.count("consistent") / len(emotional) <= 0.6


def test_class_balance(medium):
    for split, samples in medium.items():
        n = len(samples)
        cues = [syn.cues_of(s.emotions) for s in samples]
        visual = collections.Counter(v for v, _ in cues)
        audio = collections.Counter(a for _, a in cues)
        assert visual[None] == round(n * syn.NEUTRAL_FACE_SHARE)
        faces = [visual[w] for w in syn.VISUAL_WORDS]
        assert max(faces) - min(faces) <= 1, (split, visual)
        assert max(audio.values()) - min(audio.values()) <= 1, (split, audio)
        assert sum("frustrated" in s.emotions for s in samples) >= n // 12


def test_visual_classes_separable_from_decoded_frames(medium):
    def colour(s):  # mean colour of the central square, always inside the face
        return first_frame(s.video)[22:42, 22:42].reshape(-1, 3).mean(0)

    def cls(s):
        return syn.cues_of(s.emotions)[0] or "neutral"

    feats = collections.defaultdict(list)
    for s in medium["train"]:
        feats[cls(s)].append(colour(s))
    centroids = {k: np.mean(v, 0) for k, v in feats.items()}
    held_out = medium["val"] + medium["test"]
    correct = sum(min(centroids, key=lambda k: np.linalg.norm(colour(s) - centroids[k])) == cls(s) for s in held_out)
    assert correct / len(held_out) >= 0.97
    spread = max(np.std(v, 0).max() for v in feats.values())
    gap = min(np.linalg.norm(centroids[a] - centroids[b]) for a in centroids for b in centroids if a < b)
    assert gap > 6 * spread, (gap, spread)


def mouth_curvature(frame: np.ndarray) -> float:
    """Quadratic coefficient of the dark mouth pixels, y = a + b (x - cx)^2, times the face
    radius: < 0 when the ends are higher than the centre (smile), > 0 for a frown."""
    f = frame.astype(np.int32)
    face = np.abs(f - f[0, 0]).sum(-1) > 60  # differs from the background corner
    ys, xs = np.nonzero(face)
    cy, cx, r = (ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2, (ys.max() - ys.min()) / 2
    yy, xx = np.mgrid[0:f.shape[0], 0:f.shape[1]]
    mouth = (f.max(-1) < 90) & (np.abs(xx - cx) <= 0.5 * r) & (yy >= cy + 0.2 * r) & (yy <= cy + 0.75 * r)
    y, x = np.nonzero(mouth)
    return float(np.polyfit((x - cx) ** 2, y, 1)[0] * r)


def test_mouth_shape_visible_in_decoded_frames(medium):
    curves = collections.defaultdict(list)
    for s in medium["val"] + medium["test"]:
        curves[syn.cues_of(s.emotions)[0]].append(mouth_curvature(first_frame(s.video)))
    assert max(curves["happy"]) < -0.7 and min(curves["sad"]) > 0.7, curves
    assert max(abs(c) for c in curves["angry"] + curves[None]) < 0.3, curves


def test_audio_classes_separable_from_decoded_audio(medium):
    pitch, rate, loud = (collections.defaultdict(list) for _ in range(3))
    for s in medium["train"] + medium["val"]:
        x = decoded_audio(s.video)[0, :32000].astype(np.float64)
        spec = np.abs(np.fft.rfft(x))
        freqs = np.fft.rfftfreq(len(x), 1 / 16000)
        band = (freqs > 50) & (freqs < 1000)
        envelope = np.convolve(np.abs(x), np.ones(160) / 160, mode="same")
        env_spec = np.abs(np.fft.rfft(envelope - envelope.mean()))
        env_band = (freqs > 1) & (freqs < 12)
        audio = syn.cues_of(s.emotions)[1]
        pitch[audio].append(freqs[band][spec[band].argmax()])
        rate[audio].append(freqs[env_band][env_spec[env_band].argmax()])
        loud[audio].append(np.sqrt((x ** 2).mean()))
    # octaves apart: calm ~110 Hz, excited ~220 Hz, anxious ~440 Hz
    assert max(pitch["calm"]) < 155 < min(pitch["excited"]) <= max(pitch["excited"]) < 310 < min(pitch["anxious"])
    # syllable rates ~2, ~4.5, ~8 Hz
    assert max(rate["calm"]) < 3.3 < min(rate["excited"]) <= max(rate["excited"]) < 6.2 < min(rate["anxious"])
    assert np.median(loud["excited"]) > 1.8 * np.median(loud["anxious"]) > 1.8 * np.median(loud["calm"])


def test_ensure_dataset_reuses_and_refuses_mismatch(tmp_path):
    root = tmp_path / "data"
    first = syn.ensure_dataset(root, seed=1, **SMALL)
    stamp = (root / syn.DONE_FILE).stat().st_mtime_ns
    start = time.perf_counter()
    again = syn.ensure_dataset(root, seed=1, **SMALL)
    assert again == first and time.perf_counter() - start < 0.5
    assert (root / syn.DONE_FILE).stat().st_mtime_ns == stamp
    assert json.loads((root / syn.DONE_FILE).read_text())["params"]["seed"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # no temporary folder left behind
    with pytest.raises(FileExistsError, match=f"{root}.*other parameters.*seed"):
        syn.ensure_dataset(root, seed=2, **SMALL)
    with pytest.raises(FileExistsError, match="n_train"):
        syn.ensure_dataset(root, seed=1, **{**SMALL, "n_train": 13})
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=f"{foreign}.*not a finished synthetic dataset"):
        syn.ensure_dataset(foreign, seed=1, **SMALL)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert syn.ensure_dataset(empty, seed=1, **SMALL)["train"].is_file()


def test_write_clip_variants_decode(tmp_path):
    import av
    import decord
    rng = np.random.default_rng(0)
    tone = (0.3 * np.sin(2 * np.pi * 300 * np.arange(48000 * 1.5) / 48000)).astype(np.float32)
    stereo = syn.write_clip(tmp_path / "stereo.mp4", rng.integers(0, 255, (15, 64, 64, 3), dtype=np.uint8),
                            tone, fps=10, sample_rate=48000, audio_channels=2)
    raw = decoded_audio(stereo, sample_rate=-1, mono=False)
    assert raw.shape[0] == 2 and 72000 <= raw.shape[1] <= 72000 + 2048
    with av.open(str(stereo)) as c:
        assert (c.streams.audio[0].rate, c.streams.audio[0].channels) == (48000, 2)

    silent = syn.write_clip(
        tmp_path / "silent.mp4", np.zeros((25, 72, 96, 3), np.uint8), None, fps=25, sample_rate=16000
    )
    vr = decord.VideoReader(str(silent), ctx=decord.cpu(0))
    assert (len(vr), *vr[0].shape) == (25, 72, 96, 3) and vr.get_avg_fps() == pytest.approx(25.0)
    with av.open(str(silent)) as c:
        assert [s.type for s in c.streams] == ["video"]

    voice_only = syn.write_clip(tmp_path / "voice.m4a", None, tone[:16000], fps=10, sample_rate=22050, container="mp4")
    with av.open(str(voice_only)) as c:
        assert [s.type for s in c.streams] == ["audio"]
    assert decoded_audio(voice_only, sample_rate=16000).shape[1] > 10000

    with pytest.raises(ValueError, match="even height and width"):
        syn.write_clip(tmp_path / "odd.mp4", np.zeros((2, 63, 64, 3), np.uint8), None, fps=10, sample_rate=16000)
    with pytest.raises(ValueError, match="both are None"):
        syn.write_clip(tmp_path / "none.mp4", None, None, fps=10, sample_rate=16000)
    with pytest.raises(ValueError, match=r"within \[-1, 1\]"):
        syn.write_clip(tmp_path / "loud.mp4", None, tone * 10, fps=10, sample_rate=48000)


@pytest.mark.integration
def test_cli_prints_what_it_wrote(tmp_path):
    root = tmp_path / "cli"
    cmd = [sys.executable, "-m", "affectgpt.apps.synthetic", f"root={root}", "seed=4",
           "n_train=6", "n_val=3", "n_test=3", "workers=1"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"train: 6 clips -> {root / 'train.jsonl'}" in out.stdout
    assert len(list((root / "clips").glob("*.mp4"))) == 12
    bad = subprocess.run([*cmd[:4], "seed=5", *cmd[5:]], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and str(root) in bad.stderr and "Traceback" not in bad.stderr
