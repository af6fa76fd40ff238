"""load_media on every kind of clip a user brings (containers, codecs, rates, no audio, audio only,
rotation, variable frame rate), each written here with PyAV.

Frame i of a written clip carries its index in its colour: red = 10 * (i % 25),
green = 10 * (i // 25), blue = 128, so a decoded frame tells which frame it is even after
lossy compression. Audio is a sine whose frequency the tests read back from an FFT.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from affectgpt.data.media import MediaError, _frames_decord, _frames_pyav, load_media
from helpers import ROOT, write_clip


def frame_index(frame: np.ndarray) -> int:
    return int(round(frame[..., 0].mean() / 10)) + 25 * int(round(frame[..., 1].mean() / 10))


def peak_hz(audio: np.ndarray, rate: int = 16000) -> float:
    spec = np.abs(np.fft.rfft(audio))
    return float(np.fft.rfftfreq(audio.size, 1 / rate)[spec.argmax()])


def expected_indices(n_total: int, n: int) -> list[int]:
    return [int((i + 0.5) * n_total / n) for i in range(n)]


def expected_by_timestamps(path: Path, n: int) -> list[int]:
    """Ground truth without decord or seeking: decode every frame with PyAV, take the
    frame shown at the centre of each of n equal time segments."""
    with av.open(str(path)) as c:
        decoded = [(f.time, frame_index(f.to_ndarray(format="rgb24"))) for f in c.decode(video=0)]
        step = 1 / float(c.streams.video[0].average_rate)
    times = np.array([t for t, _ in decoded])
    start, end = times[0], times[-1] + step
    targets = start + (np.arange(n) + 0.5) * (end - start) / n
    return [decoded[int(np.searchsorted(times, t, side="right") - 1)][1] for t in targets]


VFR_PTS = [20 * i for i in range(15)] + [300 + 200 * i for i in range(15)]  # 50 fps, then 5 fps


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    w = write_clip
    out = {
        "mp4": w(d / "h264.mp4"),
        "webm": w(d / "vp9.webm", vcodec="libvpx-vp9", acodec="libopus", sample_rate=48000, fmt="webm"),
        "mkv": w(d / "h264.mkv"),
        "mov": w(d / "h264.mov"),
        "avi": w(d / "mpeg4.avi", vcodec="mpeg4", acodec="mp3", sample_rate=44100),
        "stereo48k": w(d / "stereo48k.mkv", sample_rate=48000, channels=2, acodec="pcm_s16le"),
        "stereo48k_aac": w(d / "stereo48k.mp4", sample_rate=48000, channels=2),
        "mono8k": w(d / "mono8k.mp4", sample_rate=8000),
        "noaudio": w(d / "noaudio.mp4", sample_rate=None),
        "audioonly_m4a": w(d / "audioonly.m4a", vcodec=None, fmt="mp4"),
        "audioonly_wav": w(d / "speech.wav", vcodec=None, acodec="pcm_s16le", freq=880.0),
        "vfr": w(d / "vfr.mp4", pts_ms=VFR_PTS),
        "faststart": w(d / "faststart.mp4", n_frames=60, options={"movflags": "faststart"}),
    }
    zero = d / "zero.mp4"
    zero.write_bytes(b"")
    text = d / "notes.mp4"
    text.write_text("this is a text file, not a video\n")
    out.update(zero=zero, text=text)
    cut = [("truncated", out["mp4"]), ("truncated_faststart", out["faststart"]), ("truncated_mkv", out["mkv"])]
    for name, src in cut:
        data = src.read_bytes()
        dst = d / f"{name}{src.suffix}"
        dst.write_bytes(data[: len(data) // 2])
        out[name] = dst
    return out


GOOD_VIDEO = ["mp4", "webm", "mkv", "mov", "avi", "stereo48k", "mono8k", "noaudio", "vfr"]


@pytest.mark.parametrize("kind", GOOD_VIDEO)
def test_every_container_gives_n_uniform_frames(clips, kind):
    m = load_media(clips[kind], n_frames=8)
    assert m.has_video and m.frames.dtype == np.uint8 and m.frames.shape == (8, 48, 64, 3)
    got = [frame_index(f) for f in m.frames]
    assert got == expected_by_timestamps(clips[kind], 8)
    if kind not in ("vfr", "avi"):  # PyAV's avi muxer stores frame 1 at pts 2: a real shift
        assert got == expected_indices(30, 8)
        assert m.duration == pytest.approx(2.0, abs=0.05)


def test_variable_frame_rate_is_sampled_uniformly_in_time(clips):
    m = load_media(clips["vfr"], n_frames=8)
    # the last frame's length is the muxer's guess (20 or 200 ms); the span follows it
    end = m.duration
    assert VFR_PTS[-1] / 1000 < end <= (VFR_PTS[-1] + 200) / 1000
    targets = (np.arange(8) + 0.5) * end / 8
    expected = [int(np.searchsorted(np.array(VFR_PTS) / 1000, t, side="right") - 1) for t in targets]
    got = [frame_index(f) for f in m.frames]
    assert got == expected
    assert got != expected_indices(30, 8)  # index-uniform sampling would be wrong here


@pytest.mark.parametrize("kind", ["mp4", "vfr", "mkv"])
def test_pyav_fallback_picks_the_same_frames_as_decord(clips, kind):
    a, dur_a = _frames_decord(clips[kind], 8, (-1, -1), 0.0)
    b, dur_b = _frames_pyav(clips[kind], 8, (-1, -1), 0, 0.0)
    assert [frame_index(f) for f in a] == [frame_index(f) for f in b]
    assert dur_a == pytest.approx(dur_b, abs=0.05)  # they may differ in the last frame's length


@pytest.mark.integration
def test_without_decord_the_module_imports_and_pyav_decodes_the_same_frames(clips):
    """decord is left out where it has no wheel (aarch64, the GPU image's carried wheels): a fresh process in
    which ``import decord`` fails still imports affectgpt.data.media and decodes with PyAV."""
    code = ("import sys; sys.modules['decord'] = None\n"
            "from pathlib import Path\n"
            "from affectgpt.data import media\n"
            "assert media.decord is None\n"
            "m = media.load_media(Path(sys.argv[1]), n_frames=8)\n"
            "print(m.frames.tolist())")
    r = subprocess.run([sys.executable, "-c", code, str(clips["mp4"])], capture_output=True, text=True, timeout=120,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    frames = np.array(json.loads(r.stdout), dtype=np.uint8)
    assert frames.shape == (8, 48, 64, 3)
    assert [frame_index(f) for f in frames] == expected_indices(30, 8)  # what decord gives (the test above)


def marker_image(i: int, width: int, height: int) -> np.ndarray:
    img = np.zeros((height, width, 3), np.uint8)
    img[: height // 4, : width // 4] = 255  # white square at the top-left of the stored picture
    return img


@pytest.mark.parametrize("rotation,corner", [(90, "bottom-left"), (-90, "top-right"), (180, "bottom-right")])
def test_rotation_metadata_gives_upright_frames(tmp_path, rotation, corner):
    # ffmpeg's autorotate convention (checked against the ffmpeg CLI): +90 turns the picture counter-clockwise.
    p = write_clip(tmp_path / "rot.mp4", n_frames=10, rotation=rotation, image=marker_image)
    m = load_media(p, n_frames=4)
    h, w = (64, 48) if rotation % 180 else (48, 64)
    assert m.frames.shape == (4, h, w, 3)
    f = m.frames[0, ..., 0].astype(float)
    quads = {
        "top-left": f[: h // 2, : w // 2],
        "top-right": f[: h // 2, w // 2 :],
        "bottom-left": f[h // 2 :, : w // 2],
        "bottom-right": f[h // 2 :, w // 2 :],
    }
    assert max(quads, key=lambda k: quads[k].mean()) == corner
    assert load_media(p, n_frames=2, frame_size=24).frames.shape[1:3] == ((32, 24) if rotation % 180 else (24, 32))


def test_audio_is_16k_mono_from_any_rate_and_layout(clips):
    for kind in ["mp4", "webm", "mkv", "stereo48k", "stereo48k_aac", "mono8k", "avi"]:
        m = load_media(clips[kind])
        assert m.has_audio and m.audio.dtype == np.float32 and m.audio.ndim == 1, kind
        # 2 s; mp4 trims AAC priming/padding exactly, mkv/avi keep up to one codec frame more
        assert 32000 - 200 <= m.audio.size <= 32000 + 1152, (kind, m.audio.size)
        assert peak_hz(m.audio) == pytest.approx(440, abs=2), kind
    stereo = load_media(clips["stereo48k"]).audio
    assert np.abs(stereo[4000:28000]).max() == pytest.approx(0.3, abs=0.005)  # mean of the 0.4 and 0.2 channels (PCM)
    assert load_media(clips["mp4"]).audio.size == 32000


def test_separate_audio_file_overrides_the_video_track(clips):
    m = load_media(clips["mp4"], audio=clips["audioonly_wav"])
    assert m.has_video and peak_hz(m.audio) == pytest.approx(880, abs=2)
    m = load_media(clips["noaudio"], audio=clips["audioonly_wav"])
    assert m.has_audio and m.has_video
    with pytest.raises(MediaError, match="no audio stream"):
        load_media(clips["mp4"], audio=clips["noaudio"])


def test_missing_streams_are_flags_not_errors(clips):
    m = load_media(clips["noaudio"])
    assert m.has_video and not m.has_audio and m.audio is None
    for kind in ["audioonly_m4a", "audioonly_wav"]:
        m = load_media(clips[kind])
        assert not m.has_video and m.frames is None and m.has_audio
        assert m.duration == pytest.approx(2.0, abs=0.05)
    m = load_media(None, audio=clips["audioonly_wav"])
    assert not m.has_video and m.audio.size == 32000


@pytest.mark.parametrize(
    "kind,cause",
    [
        ("zero", "empty file"),
        ("text", "not a readable media file"),
        ("truncated", "not a readable media file"),
        ("truncated_faststart", "truncated"),
        ("truncated_mkv", "truncated"),
    ],
)
def test_bad_files_raise_one_line_media_error(clips, kind, cause):
    with pytest.raises(MediaError) as e:
        load_media(clips[kind])
    msg = str(e.value)
    assert msg.startswith(f"{clips[kind]}: ") and cause in msg and "\n" not in msg
    with pytest.raises(MediaError, match="empty file"):
        load_media(clips["mp4"], audio=clips["zero"])


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(MediaError, match="file not found"):
        load_media(tmp_path / "nope.mp4")
    with pytest.raises(MediaError, match="not a regular file"):
        load_media(tmp_path)


def test_short_clip_repeats_frames_and_frame_size_keeps_aspect(clips, tmp_path):
    p = write_clip(tmp_path / "three.mp4", n_frames=3, sample_rate=None)
    m = load_media(p, n_frames=8)
    assert m.frames.shape[0] == 8 and [frame_index(f) for f in m.frames] == expected_indices(3, 8)
    m = load_media(clips["mp4"], n_frames=2, frame_size=24)
    assert m.frames.shape == (2, 24, 32, 3)


def test_long_low_res_clip_costs_about_as_much_as_a_short_one(tmp_path, clips):
    long = write_clip(tmp_path / "long.mkv", n_frames=600, fps=1, size=(32, 24), sample_rate=8000, audio_seconds=600.0,
                      acodec="pcm_s16le")
    t0 = time.perf_counter()
    m = load_media(long, n_frames=8, max_audio_seconds=30)
    long_s = time.perf_counter() - t0
    assert [frame_index(f) for f in m.frames] == expected_indices(600, 8)
    assert m.audio.size == 30 * 16000 and m.duration == pytest.approx(600, abs=1)
    t0 = time.perf_counter()
    load_media(clips["mp4"], n_frames=8, max_audio_seconds=30)
    short_s = time.perf_counter() - t0
    assert long_s < 0.5 + 10 * short_s, (long_s, short_s)  # a full decode takes seconds
