"""Cutting a long recording into utterance segments for the emotion timeline.

``speech`` (default): energy-based speech activity on the audio track, streamed in 30-s pieces
(an hour costs 180,000 levels of 20 ms, 0.7 MB, never the waveform). A 20-ms frame is active when
its RMS level is above ``threshold_db``, by default adaptive: 35% of the way from the noise floor
(10th percentile of the levels) to the speech level (95th percentile), and never below
``min_db``. Active runs closer than ``min_silence`` merge (pauses between words and syllables),
runs shorter than ``min_speech`` are dropped (clicks), each run is widened by ``pad`` and a run
longer than ``max_seconds`` is cut into equal parts. Energy, not a speech model, on purpose: the
model reads the voice's tone as well as its words, so a laugh, a sigh or the synthetic dataset's
humming voice (not speech) is a segment too; whether it holds words is the ASR's question
(``subtitle=auto`` gives such a segment an empty subtitle, ``asr: "no speech"``).

``fixed``: windows of ``window`` seconds over the whole audio, for recordings without pauses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from affectgpt.data.stream import audio_chunks

FRAME_SECONDS = 0.02


@dataclass
class SegmentConfig:
    mode: str = "speech"  # speech | fixed
    window: float = 2.0  # fixed: window length (s)
    threshold_db: float | None = None  # None: adaptive (see the module doc)
    min_db: float = -50.0
    min_silence: float = 0.4
    min_speech: float = 0.3
    pad: float = 0.1
    max_seconds: float = 30.0


def frame_levels(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """RMS level (dBFS) of every 20-ms frame of the audio track, decoded in 30-s pieces."""
    hop = int(round(FRAME_SECONDS * sample_rate))
    levels, rest = [], np.zeros(0, np.float32)
    for _, piece in audio_chunks(path, sample_rate, chunk_seconds=30.0):
        data = np.concatenate([rest, piece]) if rest.size else piece
        n = data.size // hop
        if n:
            frames = data[: n * hop].reshape(n, hop).astype(np.float64)
            levels.append(10 * np.log10(np.maximum(np.mean(frames * frames, axis=1), 1e-10)))
        rest = data[n * hop :]
    if rest.size:
        levels.append(np.array([10 * np.log10(max(float(np.mean(rest.astype(np.float64) ** 2)), 1e-10))]))
    return np.concatenate(levels) if levels else np.zeros(0)


def threshold_for(levels: np.ndarray, cfg: SegmentConfig) -> float:
    if cfg.threshold_db is not None:
        return float(cfg.threshold_db)
    floor, peak = np.percentile(levels, 10), np.percentile(levels, 95)
    return float(max(cfg.min_db, floor + 0.35 * (peak - floor)))


def runs_from_levels(levels: np.ndarray, cfg: SegmentConfig) -> list[tuple[float, float]]:
    """(start, end) seconds of the active runs of ``levels`` after merging, dropping, padding and cutting."""
    if levels.size == 0:
        return []
    active = levels > threshold_for(levels, cfg)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], active.astype(np.int8), [0]])))
    runs = [[s * FRAME_SECONDS, e * FRAME_SECONDS] for s, e in zip(edges[::2], edges[1::2], strict=True)]
    merged: list[list[float]] = []
    for r in runs:
        if merged and r[0] - merged[-1][1] < cfg.min_silence:
            merged[-1][1] = r[1]
        else:
            merged.append(r)
    total = levels.size * FRAME_SECONDS
    kept = [r for r in merged if r[1] - r[0] >= cfg.min_speech]
    out: list[tuple[float, float]] = []
    for i, (s, e) in enumerate(kept):
        lo = max(0.0, s - cfg.pad, (kept[i - 1][1] + s) / 2 if i else 0.0)
        hi = min(total, e + cfg.pad, (e + kept[i + 1][0]) / 2 if i + 1 < len(kept) else total)
        pieces = max(1, int(np.ceil((hi - lo) / cfg.max_seconds)))
        step = (hi - lo) / pieces
        out += [(round(float(lo + k * step), 3), round(float(lo + (k + 1) * step), 3)) for k in range(pieces)]
    return out


def find_segments(path: str | Path, cfg: SegmentConfig | None = None) -> list[tuple[float, float]]:
    """The segments of a file's audio track (see the module doc)."""
    cfg = cfg or SegmentConfig()
    if cfg.mode not in ("speech", "fixed"):
        raise ValueError(f"segment.mode={cfg.mode}: expected speech or fixed")
    levels = frame_levels(path)
    if cfg.mode == "speech":
        return runs_from_levels(levels, cfg)
    if cfg.window <= 0:
        raise ValueError(f"segment.window={cfg.window}: expected a positive number of seconds")
    total = levels.size * FRAME_SECONDS
    starts = np.arange(0.0, total, cfg.window)
    return [(round(float(s), 3), round(float(min(s + cfg.window, total)), 3)) for s in starts
            if min(s + cfg.window, total) - s >= min(cfg.min_speech, cfg.window)]
