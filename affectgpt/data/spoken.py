"""Real speech for tests and benchmarks: sentences spoken by Debian's ``espeak-ng``, muxed as AAC into mp4.

``speak`` runs ``espeak-ng --stdout`` (a 22,050 Hz WAV) and resamples it to 16 kHz with PyAV;
``spoken_clip`` writes a clip (grey frames + the speech as AAC) with ``synthetic.write_clip``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from affectgpt.core.plan import SAMPLE_RATE
from affectgpt.data.media import load_media
from affectgpt.data.synthetic import write_clip


def have_espeak() -> bool:
    return shutil.which("espeak-ng") is not None


def speak(text: str, voice: str = "en-us", words_per_minute: int = 150, word_gap: int = 4) -> np.ndarray:
    """float32[N] at 16 kHz: ``text`` spoken by espeak-ng, with ``word_gap`` x 10 ms between words.
    espeak's run-together words are hard for Whisper tiny.en: on the 33 sentences of
    ``benchmarks/bench_asr.py`` the gap of 40 ms takes its WER from 0.109 to 0.054."""
    if not have_espeak():
        raise FileNotFoundError("espeak-ng is not installed (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-g", str(word_gap), "-w", str(wav),
                        text],
                       check=True, capture_output=True)
        audio = load_media(None, wav, n_frames=1).audio
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


def spoken_clip(path: str | Path, text: str, fps: int = 10, size: int = 64, pad_seconds: float = 0.3,
                **speak_kw) -> Path:
    """An mp4 (H.264 grey frames + AAC speech) of ``text``, with ``pad_seconds`` of silence around it."""
    pad = np.zeros(int(pad_seconds * SAMPLE_RATE), np.float32)
    audio = np.concatenate([pad, speak(text, **speak_kw), pad])
    frames = np.full((max(1, round(audio.size / SAMPLE_RATE * fps)), size, size, 3), 128, np.uint8)
    return write_clip(path, frames, audio, fps=fps, sample_rate=SAMPLE_RATE)


def silent_clip(path: str | Path, seconds: float = 3.0, fps: int = 10, size: int = 64) -> Path:
    """An mp4 whose AAC track is digital silence plus faint noise (-70 dBFS): nothing to transcribe."""
    audio = np.random.default_rng(0).normal(0, 3e-4, int(seconds * SAMPLE_RATE)).astype(np.float32)
    frames = np.full((max(1, round(seconds * fps)), size, size, 3), 128, np.uint8)
    return write_clip(path, frames, audio, fps=fps, sample_rate=SAMPLE_RATE)
