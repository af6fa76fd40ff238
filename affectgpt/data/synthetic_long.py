"""A long video of synthetic clips with known emotions, separated by silences: the timeline's test input.

    python -m affectgpt.apps.synthetic_long output=long.mp4 [clips=12] [minutes=null] [seed=0]

Each clip is a synthetic dataset clip (``synthetic.render_face`` + ``render_voice``: face colour
and voice pitch/rate decide the emotions, ``synthetic.labels_for``); between clips, 0.8-1.5 s of
digital silence over a faceless background. Written frame by frame and piece by piece with PyAV,
so an hour-long file is made in bounded memory. ``OUTPUT.truth.jsonl`` gets one row per clip:
``{"start", "end", "emotions"}`` in seconds of the file.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from affectgpt.core.plan import SAMPLE_RATE
from affectgpt.data.synthetic import AUDIO_WORDS, VISUAL_WORDS, labels_for, render_face, render_voice


def write_long_video(path: str | Path, clips: int = 12, seed: int = 0, fps: int = 10, size: int = 64,
                     seconds: float = 2.0, silence: tuple[float, float] = (0.8, 1.5)) -> list[dict]:
    """Write the video and ``PATH.truth.jsonl``; returns the truth rows. Clip i shows visual word
    ``(None, happy, sad, angry)[i % 4]`` and audio word ``AUDIO_WORDS[(i + i // 4) % 3]``, so
    every pair occurs within 12 clips."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path}: exists; choose a new output path")
    rng = np.random.default_rng(seed)
    visuals = (None, *VISUAL_WORDS)
    truth, t = [], 0.0
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("h264", rate=fps)
        vs.width = vs.height = size
        vs.pix_fmt = "yuv420p"
        vs.options = {"preset": "veryfast", "crf": "20", "rc-lookahead": "0", "g": str(2 * fps)}
        vs.codec_context.thread_count = 1
        as_ = out.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        as_.bit_rate = 48000
        n_video = n_audio = 0

        def put(frames: np.ndarray, audio: np.ndarray):
            nonlocal n_video, n_audio
            for img in frames:
                f = av.VideoFrame.from_ndarray(img, format="rgb24")
                f.pts = n_video
                n_video += 1
                out.mux(vs.encode(f))
            a = av.AudioFrame.from_ndarray(audio[None, :].astype(np.float32), format="fltp", layout="mono")
            a.sample_rate, a.pts, a.time_base = SAMPLE_RATE, n_audio, Fraction(1, SAMPLE_RATE)
            n_audio += audio.size
            out.mux(as_.encode(a))

        for i in range(clips):
            gap = float(rng.uniform(*silence))
            n_gap = int(round(gap * fps))
            shade = np.uint8(rng.integers(25, 105))
            put(np.full((n_gap, size, size, 3), shade, np.uint8), np.zeros(int(n_gap / fps * SAMPLE_RATE), np.float32))
            t = n_video / fps
            visual, audio = visuals[i % 4], AUDIO_WORDS[(i + i // 4) % 3]
            clip_rng = np.random.default_rng([seed, i])
            n = int(round(seconds * fps))
            put(render_face(visual, n, size, clip_rng), render_voice(audio, int(n / fps * SAMPLE_RATE), SAMPLE_RATE,
                                                                     clip_rng))
            truth.append({"start": round(t, 3), "end": round(n_video / fps, 3),
                          "emotions": list(labels_for(visual, audio))})
        n_tail = int(round(silence[0] * fps))
        put(np.zeros((n_tail, size, size, 3), np.uint8), np.zeros(int(n_tail / fps * SAMPLE_RATE), np.float32))
        out.mux(vs.encode(None))
        out.mux(as_.encode(None))
    with Path(f"{path}.truth.jsonl").open("w", encoding="utf-8") as f:
        f.write("".join(json.dumps(r) + "\n" for r in truth))
    return truth


def clips_for_minutes(minutes: float, seconds: float = 2.0, silence: tuple[float, float] = (0.8, 1.5)) -> int:
    return max(1, int(minutes * 60 / (seconds + sum(silence) / 2)))


if __name__ == "__main__":  # the command line moved to affectgpt/apps; say so instead of exiting 0 silently
    import sys

    from affectgpt.core.errors import moved_command

    sys.exit(moved_command("affectgpt.data.synthetic_long"))
