"""A synthetic EMER-style dataset: real mp4 clips whose emotions need both face and voice.

Each clip shows a drawn face and carries a voice-like harmonic sound:

- the face (skin colour, mouth curve, brow slant) decides the *visual* word: happy, sad,
  angry, or none for a neutral face (~15% of samples);
- the voice (pitch, syllable rate, loudness) decides the *audio* word: calm, anxious or
  excited;
- "frustrated" is added exactly when the face is angry and the voice anxious.

The subtitle is neutral in half the samples, misleading (suggests an emotion the person
does not show) in a quarter, consistent in a quarter, so the labels cannot be read off the
text. The description follows EMER: a visual clue, an audio clue, a subtitle sentence and
a conclusion "Therefore, the person's emotional state is a, b and c."

Everything is a deterministic function of the seed: same seed, same manifests, same bytes
to decode. ``ensure_dataset`` generates on first use into a temporary sibling folder and
renames it into place, with ``DONE.json`` (the generator parameters) written last.
"""

from __future__ import annotations

import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from affectgpt.core.fileio import atomic_dir
from affectgpt.data.manifest import Sample, write_manifest
from affectgpt.data.prompts import join_emotions

GENERATOR_VERSION = 1
DONE_FILE = "DONE.json"
SPLITS = ("train", "val", "test")

VISUAL_WORDS = ("happy", "sad", "angry")
AUDIO_WORDS = ("calm", "anxious", "excited")
COMBINED_WORDS = ("frustrated",)
NEUTRAL_FACE_SHARE = 0.15

# Skin colours (RGB). Far apart so they survive per-clip jitter and H.264's 4:2:0 chroma.
_SKIN = {"happy": (240, 190, 70), "sad": (100, 140, 225), "angry": (215, 45, 40), None: (185, 175, 165)}
# Mouth curvature sign: +1 smile (ends up), -1 frown (ends down), 0 flat.
_MOUTH = {"happy": 1.0, "sad": -1.0, "angry": 0.0, None: 0.0}
# Brow slant: +1 inner ends pulled down (angry), -1 inner ends raised (sad), 0 level.
_BROW = {"happy": 0.0, "sad": -1.0, "angry": 1.0, None: 0.0}
# Voice: fundamental (Hz), syllable rate (Hz), peak amplitude. Octaves apart in pitch.
_VOICE = {"calm": (110.0, 2.0, 0.12), "excited": (220.0, 4.5, 0.75), "anxious": (440.0, 8.0, 0.30)}


def labels_for(visual: str | None, audio: str) -> tuple[str, ...]:
    """The emotion words of a clip: the visual word (none for a neutral face), the audio
    word, and "frustrated" exactly when the face is angry and the voice anxious."""
    if visual is not None and visual not in VISUAL_WORDS:
        raise ValueError(f"visual cue must be one of {VISUAL_WORDS} or None, found {visual!r}")
    if audio not in AUDIO_WORDS:
        raise ValueError(f"audio cue must be one of {AUDIO_WORDS}, found {audio!r}")
    words = ([visual] if visual else []) + [audio]
    if visual == "angry" and audio == "anxious":
        words.append("frustrated")
    return tuple(words)


def cues_of(emotions: tuple[str, ...] | list[str]) -> tuple[str | None, str]:
    """Inverse of ``labels_for``: (visual word or None, audio word) of a synthetic sample."""
    visual = [e for e in emotions if e in VISUAL_WORDS]
    audio = [e for e in emotions if e in AUDIO_WORDS]
    if len(visual) > 1 or len(audio) != 1:
        raise ValueError(f"not a synthetic label set: {list(emotions)!r}")
    return (visual[0] if visual else None), audio[0]


# ----------------------------------------------------------------------------- text

NEUTRAL_SUBTITLES = (
    "I went to the market this morning.",
    "The bus comes at eight on weekdays.",
    "We moved the table next to the window.",
    "She said the meeting is on Thursday.",
    "I had rice and vegetables for lunch.",
    "The library closes at six today.",
    "He parked the car behind the building.",
    "They are painting the fence this week.",
    "My brother lives near the train station.",
    "The report has twelve pages in total.",
    "I put the keys on the kitchen counter.",
    "It rained a little in the afternoon.",
)
# Sentences that suggest one emotion; used as consistent or misleading subtitles.
EMOTIONAL_SUBTITLES = {
    "happy": (
        "I finally got the job I wanted!",
        "This is the best birthday I have ever had.",
        "We won the final match today!",
    ),
    "sad": (
        "I really miss the way things used to be.",
        "Nobody came to see me off at the station.",
        "I lost the letter she wrote me years ago.",
    ),
    "angry": (
        "How dare you read my messages!",
        "You broke it again and did not even say sorry.",
        "Get out of my office right now.",
    ),
    "calm": (
        "There is no hurry, we have all the time we need.",
        "Everything is settled, let us just rest.",
        "It is quiet here, I like sitting by the lake.",
    ),
    "anxious": (
        "What if they find out before tomorrow?",
        "I cannot stop thinking about the test results.",
        "Is someone following us? I keep hearing steps.",
    ),
    "excited": (
        "We are going to the concert tonight!",
        "I cannot wait to open the present!",
        "The trip starts tomorrow, I have packed everything!",
    ),
    "frustrated": (
        "I have explained this five times and nothing changes.",
        "The printer jammed again, right before the deadline.",
        "Every plan I make falls apart at the last minute.",
    ),
}
_SUBTITLE_EMOTION = {s: e for e, ss in EMOTIONAL_SUBTITLES.items() for s in ss}

_VISUAL_CLUES = {
    "happy": ("The face has a warm golden tone and the mouth curves upward into a smile.",
              "The face looks warm and bright, and the mouth curves up at both ends."),
    "sad": ("The face has a pale bluish tone, the inner brows are raised and the mouth curves downward.",
            "The face looks cold and blue, and the mouth droops at both ends."),
    "angry": ("The face is flushed red, the brows slant sharply inward and the mouth is a flat line.",
              "The face looks deep red, with brows drawn down toward the nose and a tight, straight mouth."),
    None: ("The face has an ordinary tone, level brows and a straight mouth, showing no clear expression.",
           "The face looks plain, with level brows and a straight mouth that shows no particular feeling."),
}
_AUDIO_CLUES = {
    "calm": ("The voice is low-pitched and soft, with slow, even syllables.",
             "The speaker talks quietly in a deep voice at a slow, steady pace."),
    "anxious": ("The voice is high-pitched and hurried, with quick, trembling syllables.",
                "The speaker talks in a thin, high voice at a rapid, nervous pace."),
    "excited": ("The voice is loud and lively, with a raised pitch and a brisk rhythm.",
                "The speaker talks loudly and energetically at a brisk pace."),
}
_SUBTITLE_CLUES = {
    "neutral": ('The subtitle "{s}" is an everyday remark with no emotion of its own.',
                'The subtitle "{s}" is a plain statement.'),
    "misleading": ('The subtitle "{s}" hints at feeling {e}, but the face and voice do not support it.',
                   'The subtitle "{s}" suggests feeling {e}, which the face and voice contradict.'),
    "consistent": ('The subtitle "{s}" also suggests feeling {e}.',
                   'The subtitle "{s}" agrees with feeling {e}.'),
}
_FRUSTRATION = ("An angry face with an anxious voice points to frustration.",
                "The angry look and the nervous voice together indicate frustration.")


def emotion_list_text(words: tuple[str, ...] | list[str]) -> str:
    """"a", "a and b", "a, b and c": the list form used in every conclusion."""
    if not words:
        raise ValueError("an emotion list needs at least one word")
    return join_emotions(words)


def conclusion(words: tuple[str, ...] | list[str]) -> str:
    """The sentence every synthetic description ends with."""
    return f"Therefore, the person's emotional state is {emotion_list_text(words)}."


def subtitle_kind(subtitle: str, emotions: tuple[str, ...] | list[str]) -> tuple[str, str | None]:
    """("neutral", None), ("misleading", word) or ("consistent", word) for a synthetic subtitle."""
    if subtitle in NEUTRAL_SUBTITLES:
        return "neutral", None
    if subtitle not in _SUBTITLE_EMOTION:
        raise ValueError(f"not a synthetic subtitle: {subtitle!r}")
    word = _SUBTITLE_EMOTION[subtitle]
    return ("consistent" if word in emotions else "misleading"), word


def _describe(rng: np.random.Generator, visual: str | None, audio: str, subtitle: str,
              kind: str, hinted: str | None, words: tuple[str, ...]) -> str:
    parts = [_VISUAL_CLUES[visual][rng.integers(2)], _AUDIO_CLUES[audio][rng.integers(2)],
             _SUBTITLE_CLUES[kind][rng.integers(2)].format(s=subtitle, e=hinted)]
    if "frustrated" in words:
        parts.append(_FRUSTRATION[rng.integers(2)])
    parts.append(conclusion(words))
    return " ".join(parts)


# ----------------------------------------------------------------------------- sampling plan

@dataclass(frozen=True)
class ClipSpec:
    """Everything needed to render one clip; rendering is a pure function of it."""
    name: str
    path: str
    visual: str | None
    audio: str
    clip_seed: int
    size: int
    fps: int
    seconds: float
    sample_rate: int


def _balanced_cues(rng: np.random.Generator, n: int) -> list[tuple[str | None, str]]:
    """Visual classes in the 15/85 neutral split, audio classes equal (to one sample), and
    every (visual, audio) cell filled evenly, so "frustrated" appears in ~1/11 of samples."""
    n_neutral = round(n * NEUTRAL_FACE_SHARE)
    visual = [None] * n_neutral + [VISUAL_WORDS[i % 3] for i in range(n - n_neutral)]
    visual.sort(key=lambda v: -1 if v is None else VISUAL_WORDS.index(v))
    # one audio cycle running through the visual blocks: balanced overall and per block
    offset = int(rng.integers(3))
    pairs = [(v, AUDIO_WORDS[(i + offset) % 3]) for i, v in enumerate(visual)]
    order = rng.permutation(n)
    return [pairs[i] for i in order]


def _subtitle_kinds(rng: np.random.Generator, n: int) -> list[str]:
    n_neutral, n_mislead = round(n * 0.5), round(n * 0.25)
    kinds = ["neutral"] * n_neutral + ["misleading"] * n_mislead + ["consistent"] * (n - n_neutral - n_mislead)
    return [kinds[i] for i in rng.permutation(n)]


def _plan_split(seed: int, split: str, n: int, root: Path, size: int, fps: int, seconds: float,
                sample_rate: int) -> tuple[list[Sample], list[ClipSpec]]:
    split_id = SPLITS.index(split)
    rng = np.random.default_rng([seed, split_id, 0])
    cues = _balanced_cues(rng, n)
    kinds = _subtitle_kinds(rng, n)
    clip_seeds = np.random.SeedSequence([seed, split_id, 1]).generate_state(max(n, 1))
    samples, specs = [], []
    for i, ((visual, audio), kind) in enumerate(zip(cues, kinds, strict=False)):
        name = f"syn_{split}_{i + 1:05d}"
        words = labels_for(visual, audio)
        if kind == "neutral":
            hinted = None
            subtitle = NEUTRAL_SUBTITLES[rng.integers(len(NEUTRAL_SUBTITLES))]
        else:
            pool = [e for e in EMOTIONAL_SUBTITLES if (e in words) == (kind == "consistent")]
            hinted = pool[rng.integers(len(pool))]
            subtitle = EMOTIONAL_SUBTITLES[hinted][rng.integers(len(EMOTIONAL_SUBTITLES[hinted]))]
        video = root / "clips" / f"{name}.mp4"
        samples.append(Sample(name=name, video=video, subtitle=subtitle,
                              description=_describe(rng, visual, audio, subtitle, kind, hinted, words),
                              emotions=words))
        specs.append(ClipSpec(name, str(video), visual, audio, int(clip_seeds[i]), size, fps, seconds, sample_rate))
    return samples, specs


# ----------------------------------------------------------------------------- rendering

def _segment_mask(xx, yy, x0, y0, x1, y1, half_width):
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    return (xx - (x0 + t * dx)) ** 2 + (yy - (y0 + t * dy)) ** 2 <= half_width ** 2


def render_face(visual: str | None, n_frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """uint8[T,H,W,3]: a drawn face whose colour, mouth and brows show ``visual``, with
    per-clip nuisance (position, background shade, skin jitter, a slow drift)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    r = size * rng.uniform(0.28, 0.32)
    cx0, cy0 = size / 2 + rng.uniform(-0.06, 0.06, size=2) * size
    background = np.clip(rng.uniform(25, 105) + rng.uniform(-10, 10, size=3), 0, 255)
    skin = np.clip(np.array(_SKIN[visual], np.float32) + rng.uniform(-10, 10, size=3), 0, 255)
    feature = np.array([30, 25, 25], np.float32)
    drift, phase, cycles = rng.uniform(0.5, 1.5), rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 1.5)
    line = max(1.0, size * 0.022)  # half line width: ~1.4 px at 64, visible after 4:2:0
    frames = np.empty((n_frames, size, size, 3), np.uint8)
    for t in range(n_frames):
        a = phase + 2 * np.pi * cycles * t / max(n_frames, 1)
        cx, cy = cx0 + drift * np.sin(a), cy0 + drift * np.cos(a)
        img = np.broadcast_to(background, (size, size, 3)).copy()
        img[((xx - cx) / (0.85 * r)) ** 2 + ((yy - cy) / r) ** 2 <= 1.0] = skin
        for side in (-1.0, 1.0):
            ex, ey = cx + side * 0.35 * r, cy - 0.2 * r
            img[(xx - ex) ** 2 + (yy - ey) ** 2 <= max(1.5, 0.1 * r) ** 2] = feature
            # inner brow end (near the nose) moves down for angry, up for sad
            inner_y = cy - 0.45 * r + _BROW[visual] * 0.15 * r
            outer_y = cy - 0.45 * r - _BROW[visual] * 0.05 * r
            img[_segment_mask(xx, yy, cx + side * 0.12 * r, inner_y, cx + side * 0.55 * r, outer_y, line)] = feature
        u = (xx - cx) / (0.45 * r)
        mouth_y = cy + 0.45 * r + _MOUTH[visual] * (0.5 - u ** 2) * 0.3 * r
        img[(np.abs(u) <= 1.0) & (np.abs(yy - mouth_y) <= line)] = feature
        frames[t] = img
    return frames


def render_voice(audio: str, n_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """float32[N] in [-1, 1]: a harmonic voice whose pitch, syllable rate and loudness show ``audio``."""
    base_f0, base_rate, base_amp = _VOICE[audio]
    f0 = base_f0 * rng.uniform(0.93, 1.07)
    rate = base_rate * rng.uniform(0.9, 1.1)
    amp = base_amp * rng.uniform(0.85, 1.15)
    t = np.arange(n_samples, dtype=np.float64) / sample_rate
    freq = f0 * (1.0 + 0.015 * np.sin(2 * np.pi * 5.0 * t + rng.uniform(0, 2 * np.pi)))  # vibrato
    phase = 2 * np.pi * np.cumsum(freq) / sample_rate
    harmonics = 1.0 / np.arange(1, 6)
    voice = sum(h * np.sin((k + 1) * phase + rng.uniform(0, 2 * np.pi)) for k, h in enumerate(harmonics))
    voice /= harmonics.sum()
    syllables = (0.5 - 0.5 * np.cos(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi))) ** 1.5
    fade = np.clip(np.minimum(t, t[-1] - t) / 0.02, 0.0, 1.0) if n_samples else t
    wave = amp * voice * syllables * fade + rng.normal(0.0, 0.003, n_samples)
    return np.clip(wave, -1.0, 1.0).astype(np.float32)


def render_clip(spec: ClipSpec) -> str:
    """Render and write one clip; returns its path. Pure function of ``spec``."""
    rng = np.random.default_rng(spec.clip_seed)
    frames = render_face(spec.visual, max(1, round(spec.seconds * spec.fps)), spec.size, rng)
    audio = render_voice(spec.audio, round(spec.seconds * spec.sample_rate), spec.sample_rate, rng)
    write_clip(spec.path, frames, audio, fps=spec.fps, sample_rate=spec.sample_rate)
    return spec.path


# ----------------------------------------------------------------------------- writing clips

def write_clip(path: str | Path, frames: np.ndarray | None, audio: np.ndarray | None, fps: float,
               sample_rate: int, audio_channels: int = 1, video_codec: str = "h264",
               container: str | None = None, audio_codec: str = "aac") -> Path:
    """Write a real media file with PyAV: ``frames`` uint8[T,H,W,3] RGB as ``video_codec``
    (yuv420p) at ``fps``, ``audio`` float32[N] (copied to every channel) or float32[N, C] in
    [-1, 1] as ``audio_codec`` at ``sample_rate``. Either may be None (no such stream), not
    both. ``container`` is an FFmpeg format name (default: from the file suffix)."""
    path = Path(path)
    if frames is None and audio is None:
        raise ValueError(f"{path}: a clip needs frames, audio or both; both are None")
    if frames is not None:
        frames = np.asarray(frames)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
            raise ValueError(f"{path}: frames must be uint8[T>0,H,W,3], found {frames.dtype}{list(frames.shape)}")
        if frames.shape[1] % 2 or frames.shape[2] % 2:
            raise ValueError(f"{path}: yuv420p needs even height and width, found {frames.shape[2]}x{frames.shape[1]}")
    if audio is not None:
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim == 1:
            audio = np.repeat(audio[:, None], audio_channels, axis=1)
        if audio.ndim != 2 or audio.shape[1] != audio_channels or len(audio) == 0:
            raise ValueError(f"{path}: audio must be float32[N>0] or [N, {audio_channels}], found {list(audio.shape)}")
        if not np.isfinite(audio).all() or np.abs(audio).max() > 1.0:
            raise ValueError(f"{path}: audio samples must be finite and within [-1, 1]")
        if audio_channels not in (1, 2):
            raise ValueError(f"{path}: audio_channels must be 1 or 2, found {audio_channels}")
    import av  # local: importing this module must not need PyAV (manifests, labels, text)

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format=container) as out:
        vstream = astream = None
        if frames is not None:
            vstream = out.add_stream(video_codec, rate=Fraction(fps).limit_denominator(100000))
            vstream.height, vstream.width = frames.shape[1], frames.shape[2]
            vstream.pix_fmt = "yuv420p"
            if video_codec in ("h264", "libx264"):
                # x264's lookahead (mb-tree) gave different bytes for identical input in about
                # one run in three, even single-threaded; without it the output repeats exactly.
                # One thread: the generator already runs one clip per core.
                vstream.options = {"preset": "veryfast", "crf": "20", "rc-lookahead": "0"}
                vstream.codec_context.thread_count = 1
        if audio is not None:
            astream = out.add_stream(audio_codec, rate=sample_rate, layout="mono" if audio_channels == 1 else "stereo")
            if audio_codec == "aac":
                astream.bit_rate = 48000 * audio_channels
        if vstream is not None:
            for i, image in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = i
                out.mux(vstream.encode(frame))
            out.mux(vstream.encode(None))
        if astream is not None:
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio.T), format="fltp",
                                               layout="mono" if audio_channels == 1 else "stereo")
            frame.sample_rate, frame.pts = sample_rate, 0
            frame.time_base = Fraction(1, sample_rate)
            out.mux(astream.encode(frame))
            out.mux(astream.encode(None))
    return path


# ----------------------------------------------------------------------------- dataset

DEFAULTS = {"n_train": 400, "n_val": 100, "n_test": 50, "size": 64, "fps": 10, "seconds": 2.0, "sample_rate": 16000}


def _params(seed: int, n_train: int, n_val: int, n_test: int, size: int, fps: int, seconds: float,
            sample_rate: int) -> dict:
    return {"version": GENERATOR_VERSION, "seed": seed, "n_train": n_train, "n_val": n_val, "n_test": n_test,
            "size": size, "fps": fps, "seconds": seconds, "sample_rate": sample_rate}


def _pool_context():
    # forkserver is safe even after the caller started torch's threads, but it re-runs the
    # caller's script in each worker; a script read from stdin cannot be re-run, so fork then.
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    return get_context("fork" if main_file and not os.path.exists(main_file) else "forkserver")


def generate(root: Path, seed: int = 0, n_train: int = 400, n_val: int = 100, n_test: int = 50,
             size: int = 64, fps: int = 10, seconds: float = 2.0, sample_rate: int = 16000,
             workers: int | None = None) -> dict[str, Path]:
    """Write ``root/clips/*.mp4`` and the manifests ``root/{train,val,test}.jsonl``, then
    ``root/DONE.json`` with the parameters. Returns split -> manifest path. The output is a
    function of the parameters only (``workers`` changes speed, not content)."""
    root = Path(root)
    params = _params(seed, n_train, n_val, n_test, size, fps, seconds, sample_rate)
    if size < 32 or size % 2:
        raise ValueError(f"size must be an even number >= 32 (the face needs room), found {size}")
    if min(n_train, n_val, n_test) < 0 or fps <= 0 or seconds <= 0 or sample_rate < 8000:
        raise ValueError(f"invalid synthetic dataset parameters: {params}")
    plans = {split: _plan_split(seed, split, n, root, size, fps, seconds, sample_rate)
             for split, n in zip(SPLITS, (n_train, n_val, n_test), strict=False)}
    specs = [spec for _, split_specs in plans.values() for spec in split_specs]
    (root / "clips").mkdir(parents=True, exist_ok=True)
    workers = min(workers or os.cpu_count() or 1, max(1, len(specs) // 16))
    if workers <= 1:
        for spec in specs:
            render_clip(spec)
    else:
        with ProcessPoolExecutor(workers, mp_context=_pool_context()) as pool:
            list(pool.map(render_clip, specs, chunksize=8))
    manifests = {}
    for split, (samples, _) in plans.items():
        manifests[split] = root / f"{split}.jsonl"
        write_manifest(manifests[split], samples)
    info = {"generator": "affectgpt.data.synthetic", "params": params,
            "counts": {split: len(plans[split][0]) for split in SPLITS}}
    (root / DONE_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return manifests


def ensure_dataset(root: Path, seed: int = 0, **kw) -> dict[str, Path]:
    """Return the manifests of the dataset in ``root``, generating it first when absent.

    Generation goes to a temporary sibling folder that is renamed into place, so ``root``
    is either complete or absent. An existing dataset made with other parameters, or a
    non-empty ``root`` that is not a finished synthetic dataset, is an error, never reused."""
    root = Path(root)
    unknown = set(kw) - set(DEFAULTS) - {"workers"}
    if unknown:
        raise TypeError(f"ensure_dataset: unknown parameters {sorted(unknown)}")
    wanted = _params(seed, **{k: kw.get(k, v) for k, v in DEFAULTS.items()})
    if root.exists() and not (root.is_dir() and not any(root.iterdir())):
        return _check_existing(root, wanted)
    with atomic_dir(root, keep_existing=True) as tmp:  # another process may finish first; checked below
        generate(tmp, seed=seed, **kw)
    return _check_existing(root, wanted)


def _check_existing(root: Path, wanted: dict) -> dict[str, Path]:
    done = root / DONE_FILE
    if not done.is_file():
        raise FileExistsError(f"{root}: exists but is not a finished synthetic dataset (no {DONE_FILE}); "
                              "remove it or choose another data.root")
    try:
        found = json.loads(done.read_text(encoding="utf-8"))["params"]
    except (ValueError, KeyError, TypeError) as e:
        raise FileExistsError(f"{done}: unreadable generator info ({e})") from None
    if found != wanted:
        diff = {
            k: (found.get(k), wanted.get(k)) for k in sorted(set(found) | set(wanted)) if found.get(k) != wanted.get(k)
        }
        raise FileExistsError(f"{root}: synthetic dataset was generated with other parameters "
                              f"(found vs requested: {diff}); remove it or choose another data.root")
    manifests = {split: root / f"{split}.jsonl" for split in SPLITS}
    missing = [str(p) for p in manifests.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{root}: synthetic dataset is missing {missing}")
    return manifests


if __name__ == "__main__":  # the command line moved to affectgpt/apps; say so instead of exiting 0 silently
    import sys

    from affectgpt.core.errors import moved_command

    sys.exit(moved_command("affectgpt.data.synthetic"))
