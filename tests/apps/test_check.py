"""The dataset checker on a small MER2025-style folder and a JSONL manifest with real clips."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from affectgpt.apps.check import main, read_target
from helpers import write_clip


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


@pytest.fixture()
def release(tmp_path) -> Path:
    """MER2025 layout: 4 good clips (one without audio, one with a separate wav), one
    truncated, one text file named .mp4, one missing, one track2 duplicate."""
    root = tmp_path / "mer2025"
    (root / "video").mkdir(parents=True)
    (root / "audio").mkdir()
    write_clip(root / "video" / "s1.mp4")
    write_clip(root / "video" / "s2.mp4", n_frames=15)
    write_clip(root / "video" / "s3.mp4", sample_rate=None)
    write_clip(root / "video" / "s4.mkv")
    write_clip(root / "audio" / "s4.wav", vcodec=None, acodec="pcm_s16le")
    data = (root / "video" / "s1.mp4").read_bytes()
    (root / "video" / "bad_trunc.mp4").write_bytes(data[: len(data) // 2])
    (root / "video" / "bad_text.mp4").write_text("not a video")
    names = ["s1", "s2", "s3", "s4", "bad_trunc", "bad_text", "gone"]
    write_csv(
        root / "track2_train_mercaptionplus.csv",
        ["name", "openset"],
        [[n, "['happy', 'calm']" if i % 2 else "[]"] for i, n in enumerate(names)] + [["s1", "['sad']"]],
    )
    write_csv(root / "track3_train_mercaptionplus.csv", ["name", "reason"], [[n, f"reason for {n}"] for n in names[:4]])
    write_csv(root / "subtitle_chieng.csv", ["name", "chinese", "english"], [["s1", "你好", "hello"], ["s2", "", "hi"]])
    return root


def test_checker_finds_every_problem_in_a_release_folder(release, capsys, tmp_path):
    rc = main([f"path={release}", f"json={tmp_path / 'stats.json'}"])
    out = capsys.readouterr().out
    assert rc == 1
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["rows_read"] == 8 and stats["samples"] == 7 and stats["rows_dropped"] == 1
    assert "DROPPED 1: duplicate name in track2_train_mercaptionplus.csv (e.g. s1)" in out
    assert stats["missing_media"] == [f"{release / 'video' / 'gone.mp4'}: file not found"]
    unreadable = sorted(stats["unreadable_media"])
    assert len(unreadable) == 2
    assert unreadable[0].startswith(f"{release / 'video' / 'bad_text.mp4'}: not a readable media file")
    assert unreadable[1].startswith(f"{release / 'video' / 'bad_trunc.mp4'}: not a readable media file")
    assert stats["without_audio"] == 1 and stats["without_video"] == 0
    assert stats["duration_s"]["min"] == pytest.approx(1.0, abs=0.05)
    assert stats["duration_s"]["max"] == pytest.approx(2.0, abs=0.05)
    assert stats["labelled"] == 7 and stats["distinct_labels"] == 3
    assert dict(stats["top_labels"]) == {"neutral": 4, "happy": 3, "calm": 3}
    assert stats["described"] == 4 and stats["subtitled"] == 2
    assert "subtitles: 2 (28.6%) non-empty" in out and "PROBLEMS FOUND" in out
    samples, _ = read_target(release)
    assert next(s for s in samples if s.name == "s4").audio == release / "audio" / "s4.wav"
    assert main([f"path={release}", "language=chinese", "decode=false"]) == 1  # still missing + dropped
    assert "subtitles: 1 (14.3%) non-empty" in capsys.readouterr().out


@pytest.mark.integration
def test_clean_manifest_passes_through_the_command_line(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    write_clip(clips / "a.mp4")
    write_clip(clips / "b.webm", vcodec="libvpx-vp9", acodec="libopus", sample_rate=48000, fmt="webm")
    rows = [
        {"name": "a", "video": "clips/a.mp4", "subtitle": "hi", "emotions": ["happy"]},
        {"name": "b", "video": "clips/b.webm", "subtitle": "", "description": "calm voice", "emotions": ["calm"]},
    ]
    manifest = tmp_path / "train.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = subprocess.run(
        [sys.executable, "-m", "affectgpt.apps.check", f"path={manifest}", "workers=2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "samples: 2 kept of 2 rows read" in proc.stdout and proc.stdout.rstrip().endswith("OK")
    assert "duration: min 2.00 s" in proc.stdout
    config = tmp_path / "mix.yaml"
    config.write_text("sources:\n  - {format: jsonl, path: train.jsonl, ratio: 1.0}\n")
    assert main([f"path={config}"]) == 0


def test_unreadable_targets_exit_2_with_one_line(tmp_path, capsys):
    assert main([f"path={tmp_path / 'nothing.jsonl'}"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nothing.jsonl'}: not found"
    (tmp_path / "empty").mkdir()
    assert main([f"path={tmp_path / 'empty'}"]) == 2
    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n1,2\n")
    assert main([f"path={bad}"]) == 2
    assert "missing column(s) ['names'" in capsys.readouterr().err
