"""Emotion timeline of a long video: an inference mode of ``infer.py`` (``timeline=true``).

The video is cut into utterance segments (``affectgpt.data.segments``: speech activity, or fixed
windows with ``segment.mode=fixed``); each segment becomes a manifest row ``{"name", "video",
"start", "end", "subtitle"}`` (with ``subtitle=auto`` the segment's transcript), written once to
``OUT.segments.jsonl``; manifest inference (``inference.run_manifest``: batches, progress bar,
resumable) then writes one row per segment to ``OUT`` with ``start``, ``end``, ``subtitle``,
``description`` and ``emotions``; ``OUT.png`` plots the emotions over time. A segment's frames and
audio are decoded by seeking (``data.stream.load_range``), so the video is never decoded whole. A
rerun reuses the segments file and skips the segments already in ``OUT``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from affectgpt.core.plan import options_block
from affectgpt.data.manifest import Sample, read_manifest
from affectgpt.data.segments import SegmentConfig, find_segments


def segments_path(out: str | Path) -> Path:
    return Path(f"{out}.segments.jsonl")


def plot_path(out: str | Path) -> Path:
    return Path(out).with_suffix(".png")


def segment_config(node) -> SegmentConfig:
    """``SegmentConfig`` from infer.py's ``segment:`` block; unknown keys are an error."""
    return options_block(SegmentConfig, node, "segment")


def segment_samples(video: Path | None, audio: Path | None, out: Path, cfg: SegmentConfig,
                    transcribe=None) -> tuple[list[Sample], bool]:
    """The segments of ``video`` (its audio track, or ``audio``) as samples, and whether they were
    read back from ``OUT.segments.jsonl`` (a rerun); ``transcribe``: samples -> samples with subtitles."""
    path = segments_path(out)
    source = Path(video or audio)
    if path.is_file():
        samples = read_manifest(path)
        if samples and Path(samples[0].video or samples[0].audio).resolve() != source.resolve():
            raise ValueError(f"{path}: segments of {samples[0].video or samples[0].audio}, not of {source}; "
                             "choose another output or delete that file")
        return samples, True
    spans = find_segments(audio or video, cfg)
    samples = [Sample(name=f"{source.stem}_{i + 1:05d}", video=video, audio=audio,
                      extra={"start": float(s), "end": float(e)}) for i, (s, e) in enumerate(spans)]
    if transcribe is not None:
        samples = transcribe(samples)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for s in samples:
            f.write(json.dumps({**s.to_json(path.parent), **s.extra}, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)  # complete or absent: a kill during cutting or ASR redoes it
    return samples, False


def read_rows(out: Path) -> list[dict]:
    """The timeline rows of ``out`` in time order."""
    from affectgpt.runtime.inference import read_done  # lazy: infer imports this module before torch loads

    return sorted((r for r in read_done(out) if "start" in r), key=lambda r: r["start"])


def plot_timeline(rows: list[dict], png: Path, title: str = "") -> Path:
    """One lane per predicted emotion word, a bar for every segment that names it; segments with
    no emotion word or an error are shown in the lane at the bottom."""
    import matplotlib  # lazy: only the plot needs it; Agg is set before pyplot

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: only the plot needs it; Agg is set before pyplot

    words = sorted({e for r in rows for e in r.get("emotions") or []})
    lanes = words + ["(none / error)"]
    total = max((r["end"] for r in rows), default=1.0)
    fig, ax = plt.subplots(figsize=(min(24.0, max(8.0, total / 8)), 0.45 * len(lanes) + 1.4))
    colors = plt.get_cmap("tab10")
    for y, word in enumerate(lanes):
        if y < len(words):
            spans = [(r["start"], r["end"] - r["start"]) for r in rows if word in (r.get("emotions") or [])]
            color = colors(y % 10)
        else:
            spans = [(r["start"], r["end"] - r["start"]) for r in rows if not r.get("emotions")]
            color = "0.6"
        ax.broken_barh(spans, (y - 0.35, 0.7), facecolors=color)
    ax.set_yticks(range(len(lanes)), lanes)
    ax.set_ylim(-0.7, len(lanes) - 0.3)
    ax.set_xlim(0, total)
    ax.set_xlabel("time (s)")
    ax.set_title(title or f"emotions over time ({len(rows)} segments)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png
