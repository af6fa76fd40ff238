"""The emotion timeline: a long video made of synthetic clips with silences between them is cut into
one segment per clip (boundaries within 0.5 s), ``infer.py timeline=true`` writes a row per segment
and the plot, resumes, and decodes a long file in bounded memory. (That the trained tiny default's
emotions per segment match the clips' is in tests/recipe/test_learning.py, next to its trained run.)
``infer.py`` runs in this process (``run_in_process``: the same exit code, stdout and stderr): its answer is the point,
and tests/runtime/test_infer.py keeps its subprocess tests. The memory test keeps fresh processes: their peak RSS is
what it measures."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from affectgpt.data.segments import FRAME_SECONDS, SegmentConfig, find_segments, runs_from_levels
from affectgpt.data.synthetic_long import write_long_video
from helpers import ENV, ROOT, run_in_process


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    return path, write_long_video(path, clips=12, seed=0)


def matches(found: list[tuple[float, float]], truth: list[dict], tol: float = 0.5) -> bool:
    return len(found) == len(truth) and all(
        abs(s - t["start"]) <= tol and abs(e - t["end"]) <= tol for (s, e), t in zip(found, truth, strict=True))


def test_every_clip_is_one_segment_with_its_boundaries(long_video):
    path, truth = long_video
    found = find_segments(path)
    assert matches(found, truth), list(zip(found, [(t["start"], t["end"]) for t in truth], strict=False))
    # the humming voice dips to the noise between syllables (calm: 2 per second); without merging
    # the pauses it falls apart into syllables
    assert len(find_segments(path, SegmentConfig(min_silence=0.0, min_speech=0.0))) > 2 * len(truth)


def test_fixed_windows_cover_the_file(long_video):
    path, truth = long_video
    windows = find_segments(path, SegmentConfig(mode="fixed", window=5.0))
    assert windows[0][0] == 0 and all(b[0] == a[1] for a, b in zip(windows, windows[1:], strict=False))
    assert abs(windows[-1][1] - (truth[-1]["end"] + 0.8)) < 0.1  # the 0.8 s of trailing silence included
    with pytest.raises(ValueError, match="segment.mode=words"):
        find_segments(path, SegmentConfig(mode="words"))


def test_runs_by_hand():
    levels = np.full(200, -90.0)  # 4 s of silence at 20 ms
    levels[10:60] = -20  # 0.2-1.2 s
    levels[70:100] = -20  # 1.4-2.0 s: a 0.2 s pause, merged
    levels[150:152] = -20  # a 40 ms click: dropped
    cfg = SegmentConfig(pad=0.0, min_silence=0.4, min_speech=0.3, max_seconds=0.5)
    runs = runs_from_levels(levels, cfg)
    assert runs == [(0.2, 0.65), (0.65, 1.1), (1.1, 1.55), (1.55, 2.0)]  # 1.8 s cut into 4 equal parts
    assert FRAME_SECONDS == 0.02


@pytest.mark.integration
def test_infer_timeline_rows_plot_and_resume(artifacts, long_video, tmp_path):
    path, truth = long_video
    out = tmp_path / "t.jsonl"
    args = ["infer.py", f"checkpoint={artifacts['checkpoint']}", f"video={path}", "timeline=true", f"output={out}",
            "max_new_tokens=4", "batch_size=5", "num_workers=0"]
    r = run_in_process(args)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len(truth) and f"{len(truth)} segments (written to" in r.stderr
    assert all({"start", "end", "subtitle", "description", "emotions"} <= set(r) for r in rows)
    assert matches(sorted((r["start"], r["end"]) for r in rows), truth)
    png = out.with_suffix(".png")
    assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"
    # resume: drop the last 4 rows and a torn line; only those segments run again
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:-4]) + lines[-4][:10])
    again = run_in_process(args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "wrote 4 rows (0 errors, 8 already in" in again.stderr and "read back from" in again.stderr
    assert sorted(json.loads(x)["name"] for x in out.read_text().splitlines()) == sorted(r["name"] for r in rows)
    bad = run_in_process(["infer.py", f"checkpoint={artifacts['checkpoint']}", f"video={path}", "timeline=true"])
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1] == (
        "error: timeline=true needs video=FILE (or audio=FILE) and output=FILE.jsonl")


SEGMENT_AND_DECODE = """
import resource, sys
from affectgpt.data.segments import find_segments
from affectgpt.data.stream import load_range
segs = find_segments(sys.argv[1])
for s, e in segs[::25]:
    m = load_range(sys.argv[1], None, s, e)
    assert m.frames.shape[0] == 8 and abs(m.audio.size - (e - s) * 16000) < 800, (m.frames.shape, m.audio.size)
print(len(segs), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


@pytest.mark.integration
def test_a_long_video_is_segmented_and_decoded_in_bounded_memory(tmp_path):
    """Peak RSS of cutting + decoding segments of a 2-minute and an 8-minute video: the same within
    15 MB, where holding the 8-minute audio alone would add 31 MB (the hour: 230 MB)."""
    peaks = {}
    for minutes in (2, 8):
        path = tmp_path / f"v{minutes}.mp4"
        run = subprocess.run([sys.executable, "-m", "affectgpt.apps.synthetic_long", f"output={path}",
                              f"minutes={minutes}"], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr[-2000:]
        r = subprocess.run([sys.executable, "-c", SEGMENT_AND_DECODE, str(path)], cwd=ROOT, env=ENV,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        n, peak = map(int, r.stdout.split())
        truth = Path(f"{path}.truth.jsonl").read_text().splitlines()
        assert n == len(truth), (n, len(truth))
        peaks[minutes] = peak
    print(f"peak RSS MB: {peaks}")
    assert peaks[8] - peaks[2] < 15, peaks
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0
