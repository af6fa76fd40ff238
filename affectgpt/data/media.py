"""Decode a clip into sampled frames and a 16 kHz mono waveform.

``load_media`` is the one entry point. Video frames come from decord (``VideoReader``,
one thread) and fall back to PyAV where decord is wrong: decord 0.6 ignores or garbles
rotation metadata (a 90-degree clip comes back as a 4-channel array or fails in
``get_batch``), and it refuses some files PyAV reads. Audio is decoded with PyAV, not
decord's ``AudioReader``: ``AudioReader`` decodes the whole track on open (12 s for a
one-hour file), while PyAV can stop after ``max_audio_seconds`` and is faster per clip.

Sampling: the video's duration D (first frame start to last frame end) is cut into
``n_frames`` equal segments and frame i is the frame shown at the centre of segment i,
``t_i = start + (i + 0.5) * D / n_frames`` (the last frame whose timestamp is <= t_i).
Using timestamps, not frame indices, keeps variable-frame-rate clips uniform in time. A
clip with fewer frames than ``n_frames`` repeats frames, so ``T == n_frames`` always.

Every failure (missing, empty, truncated, non-media, undecodable) raises ``MediaError``
whose message is one line: ``"<file>: <cause>"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

try:
    import decord
except ImportError:  # optional at run time: left out where it has no wheel (aarch64, the GPU image); PyAV decodes
    decord = None

from affectgpt.core.errors import InputError

# Seeking costs a keyframe decode; decoding forward is cheaper for short gaps.
_SEEK_GAP_SECONDS = 2.0


class MediaError(InputError):
    """A media file that cannot be decoded. ``str(e) == "<file>: <cause>"`` on one line."""

    def __init__(self, path: str | Path, cause: str):
        self.path = str(path)
        self.cause = _one_line(cause)
        super().__init__(f"{self.path}: {self.cause}")


@dataclass
class Media:
    frames: np.ndarray | None  # uint8 [T, H, W, 3]; None when there is no video stream
    audio: np.ndarray | None  # float32 [N], mono at the requested rate; None when absent or empty
    duration: float  # seconds: the video's duration, or the audio's when there is no video

    @property
    def has_video(self) -> bool:
        return self.frames is not None

    @property
    def has_audio(self) -> bool:
        return self.audio is not None


@dataclass
class _Probe:
    has_video: bool
    has_audio: bool
    width: int = 0
    height: int = 0
    rotation: int = 0  # degrees counter-clockwise to turn the stored picture for display
    duration: float = 0.0


def _one_line(msg: str) -> str:
    """Collapse a library message (decord's carry a timestamp, a source path and a stack) to one line."""
    lines = [ln.strip() for ln in str(msg).splitlines() if ln.strip() and not ln.strip().startswith("Stack trace")]
    text = lines[0] if lines else "unknown error"
    text = re.sub(r"^\[[\d:]+\]\s*\S+:\d+:\s*", "", text)  # decord's "[hh:mm:ss] file.cc:123: "
    return text


def _check_file(path: Path) -> None:
    if not path.exists():
        raise MediaError(path, "file not found")
    if not path.is_file():
        raise MediaError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise MediaError(path, "empty file (0 bytes)")


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r")
    except av.error.FFmpegError as e:
        raise MediaError(path, f"not a readable media file ({getattr(e, 'strerror', None) or e})") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise MediaError(path, f"cannot open ({e})") from None


def _stream_seconds(stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return 0.0


def _probe(path: Path) -> _Probe:
    """Stream presence, size, rotation and duration. Decodes the first video frame, which
    both reads the rotation (display-matrix side data) and proves the video decodes."""
    with _open(path) as c:
        vs = c.streams.video[0] if c.streams.video else None
        has_audio = bool(c.streams.audio)
        container_s = float(c.duration) / av.time_base if c.duration else 0.0
        if vs is None:
            return _Probe(has_video=False, has_audio=has_audio, duration=container_s)
        vs.codec_context.thread_count = 1  # one core per decode; DataLoader workers scale out
        try:
            first = next(c.decode(vs), None)
        except av.error.FFmpegError as e:
            raise MediaError(path, f"video stream does not decode ({getattr(e, 'strerror', None) or e})") from None
        if first is None:
            raise MediaError(path, "video stream has no decodable frames (truncated?)")
        rotation = int(round(first.rotation or 0)) % 360
        return _Probe(
            has_video=True,
            has_audio=has_audio,
            width=first.width,
            height=first.height,
            rotation=rotation,
            duration=_stream_seconds(vs) or container_s,
        )


def _target_size(width: int, height: int, frame_size: int | None) -> tuple[int, int]:
    """(width, height) with the shorter side equal to ``frame_size``, aspect kept; -1 = unchanged."""
    if frame_size is None:
        return -1, -1
    if width <= height:
        return frame_size, max(1, round(height * frame_size / width))
    return max(1, round(width * frame_size / height)), frame_size


def _segment_centres(start: float, duration: float, n: int) -> np.ndarray:
    return start + (np.arange(n) + 0.5) * duration / n


def index_sampling(count: int, n: int) -> np.ndarray:
    """Frame indices floor(k*count/n) (``np.arange(0, count, count/n)``, the released AffectGPT's
    loader); fewer than n frames: all of them, the last repeated."""
    idx = np.arange(0, count, count / n).astype(int)[:n]
    return np.concatenate([idx, np.full(n - len(idx), idx[-1])]) if len(idx) < n else idx


def _truncation_tolerance(declared: float) -> float:
    return max(0.5, 0.1 * declared)


def _frames_decord(path: Path, n_frames: int, size: tuple[int, int], declared: float,
                   sampling: str = "centre") -> tuple[np.ndarray, float]:
    width, height = size
    vr = decord.VideoReader(str(path), ctx=decord.cpu(0), width=width, height=height, num_threads=1)
    count = len(vr)
    if count == 0:
        raise MediaError(path, "video stream has no frames")
    ts = vr.get_frame_timestamp(np.arange(count))  # [count, 2] start/end seconds, display order
    starts = np.maximum.accumulate(ts[:, 0])
    start, end = float(starts[0]), float(max(ts[-1, 1], starts[-1]))
    if declared > 0 and declared - end > _truncation_tolerance(declared):
        raise MediaError(
            path, f"truncated: the header declares {declared:.2f} s of video but frames end at {end:.2f} s"
        )
    if sampling == "index":
        idx = index_sampling(count, n_frames)
    else:
        targets = _segment_centres(start, max(end - start, 0.0), n_frames)
        idx = np.clip(np.searchsorted(starts, targets, side="right") - 1, 0, count - 1)
    frames = vr.get_batch(idx.tolist()).asnumpy()
    del vr
    if frames.ndim != 4 or frames.shape[0] != n_frames or frames.shape[-1] != 3:
        raise MediaError(path, f"decord returned frames of shape {frames.shape}")
    return frames, end - start


def _frames_pyav(
    path: Path, n_frames: int, size: tuple[int, int], rotation: int, declared: float, sampling: str = "centre"
) -> tuple[np.ndarray, float]:
    """The same sampling as ``_frames_decord`` with PyAV: demux (no decode) to learn every
    frame's timestamp, then seek to the keyframe before each chosen frame and decode up to
    it. Applies ``rotation`` so frames come out upright."""
    width, height = size
    with _open(path) as c:
        vs = c.streams.video[0]
        vs.codec_context.thread_count = 1  # one core per decode; DataLoader workers scale out
        tb = vs.time_base
        pts, end_pts = [], None
        for pkt in c.demux(vs):
            if pkt.pts is None:
                continue
            pts.append(pkt.pts)
            end_pts = max(end_pts or pkt.pts, pkt.pts + (pkt.duration or 0))
        if not pts:
            raise MediaError(path, "video stream has no frames")
        pts_arr = np.sort(np.array(pts, dtype=np.int64))
        starts = pts_arr * float(tb)
        start, end = float(starts[0]), float(end_pts * tb)
        if declared > 0 and declared - end > _truncation_tolerance(declared):
            raise MediaError(
                path, f"truncated: the header declares {declared:.2f} s of video but frames end at {end:.2f} s"
            )
        if sampling == "index":
            wanted = pts_arr[index_sampling(len(pts_arr), n_frames)]
        else:
            targets = _segment_centres(start, max(end - start, 0.0), n_frames)
            wanted = pts_arr[np.clip(np.searchsorted(starts, targets, side="right") - 1, 0, len(pts_arr) - 1)]
        kw = {} if width < 0 else {"width": width, "height": height}
        picked: dict[int, np.ndarray] = {}
        frames_iter, last_pts = None, None
        for w in sorted(set(wanted.tolist())):
            if frames_iter is None or last_pts is None or (w - last_pts) * tb > _SEEK_GAP_SECONDS:
                c.seek(int(w), stream=vs, backward=True, any_frame=False)
                frames_iter = c.decode(vs)
            frame = None
            for frame in frames_iter:
                if frame.pts is not None and frame.pts >= w:
                    break
            if frame is None or frame.pts is None or frame.pts < w:
                raise MediaError(path, f"no decodable video frame at {w * tb:.2f} s (truncated or corrupt)")
            last_pts = frame.pts
            arr = frame.to_ndarray(format="rgb24", **kw)
            picked[w] = np.ascontiguousarray(np.rot90(arr, k=rotation // 90)) if rotation else arr
    return np.stack([picked[w] for w in wanted.tolist()]), end - start


def _load_frames(path: Path, probe: _Probe, n_frames: int, frame_size: int | None,
                 sampling: str = "centre") -> tuple[np.ndarray, float]:
    """Frames and the video's duration in seconds (decoded timestamp span, or the header's)."""
    size = _target_size(probe.width, probe.height, frame_size)
    if probe.rotation % 90:
        raise MediaError(path, f"unsupported rotation {probe.rotation} degrees (only multiples of 90)")
    if probe.rotation == 0 and decord is not None:
        try:
            return _frames_decord(path, n_frames, size, probe.duration, sampling)
        except MediaError as e:
            if e.cause.startswith("truncated"):
                raise
        except Exception:  # decord raises DECORDError / RuntimeError; PyAV gets the second word
            pass
    try:
        return _frames_pyav(path, n_frames, size, probe.rotation, probe.duration, sampling)
    except av.error.FFmpegError as e:
        raise MediaError(
            path, f"video decode failed, truncated or corrupt ({getattr(e, 'strerror', None) or e})"
        ) from None


def _load_audio(
    path: Path, sample_rate: int, max_seconds: float | None, required: bool = False
) -> tuple[np.ndarray | None, float]:
    """Mono float32 at ``sample_rate`` (mean of the channels), trimmed to the stream's
    duration (drops AAC end padding) and to ``max_seconds``; (None, 0) when there is no
    audio stream, unless ``required`` (a file named as the audio source), which raises."""
    with _open(path) as c:
        if not c.streams.audio:
            if required:
                raise MediaError(path, "no audio stream in the audio file")
            return None, 0.0
        stream = c.streams.audio[0]
        declared = _stream_seconds(stream)
        container_s = float(c.duration) / av.time_base if c.duration else 0.0
        if not declared and not c.streams.video:
            declared = container_s
        limit = None if max_seconds is None else int(round(max_seconds * sample_rate))
        resampler = av.AudioResampler(format="fltp", rate=sample_rate)
        chunks: list[np.ndarray] = []
        total = 0
        try:
            for frame in c.decode(stream):
                frame.pts = None  # let the resampler count samples; odd pts would insert silence
                for out in resampler.resample(frame):
                    a = out.to_ndarray()
                    chunks.append(a.mean(axis=0, dtype=np.float32) if a.shape[0] > 1 else a[0])
                    total += a.shape[1]
                if limit is not None and total >= limit:
                    break
            else:
                for out in resampler.resample(None):
                    a = out.to_ndarray()
                    chunks.append(a.mean(axis=0, dtype=np.float32) if a.shape[0] > 1 else a[0])
        except av.error.FFmpegError as e:
            raise MediaError(path, f"audio decode failed ({getattr(e, 'strerror', None) or e})") from None
    if not chunks:
        return None, declared
    audio = np.concatenate(chunks).astype(np.float32, copy=False)
    decoded = audio.size / sample_rate
    expected = declared if max_seconds is None else min(declared, max_seconds)
    if expected > 0 and expected - decoded > _truncation_tolerance(expected):
        raise MediaError(
            path, f"truncated: the header declares {declared:.2f} s of audio but only {decoded:.2f} s decode"
        )
    keep = declared or container_s  # mkv/webm carry no per-stream duration
    if keep > 0:
        audio = audio[: int(round(keep * sample_rate))]
    if limit is not None:
        audio = audio[:limit]
    if audio.size == 0:
        return None, declared
    return np.ascontiguousarray(audio), declared or audio.size / sample_rate


def load_media(
    video: str | Path | None,
    audio: str | Path | None = None,
    n_frames: int = 8,
    sample_rate: int = 16000,
    frame_size: int | None = None,
    max_audio_seconds: float | None = None,
    frame_sampling: str = "centre",
) -> Media:
    """Decode ``n_frames`` uniformly sampled RGB frames and a mono waveform at ``sample_rate``.

    ``audio`` (a separate file, e.g. MER2025's wav) replaces the video's own track.
    ``frame_size`` resizes the shorter side (aspect kept); None keeps the stored size and
    leaves resizing to the model's preprocessing. ``max_audio_seconds`` stops audio
    decoding early so a long file costs about as much as a short one. ``frame_sampling``: centre
    (the frame shown at each segment's centre) or index (frame floor(k*N/n)). A missing stream
    gives ``frames``/``audio`` None, never an error. Raises ``MediaError`` for missing,
    empty, truncated or non-media files.
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    if video is None and audio is None:
        raise MediaError("<no file>", "neither a video nor an audio file was given")
    frames = None
    duration = 0.0
    audio_source: Path | None = None
    if video is not None:
        vpath = Path(video)
        _check_file(vpath)
        probe = _probe(vpath)
        if not probe.has_video and not probe.has_audio:
            raise MediaError(vpath, "no video or audio stream")
        if probe.has_video:
            frames, duration = _load_frames(vpath, probe, n_frames, frame_size, frame_sampling)
        if probe.has_audio:
            audio_source = vpath
        if not probe.has_video:
            duration = probe.duration
    if audio is not None:
        audio_source = Path(audio)
        _check_file(audio_source)
    wave = None
    if audio_source is not None:
        wave, audio_seconds = _load_audio(audio_source, sample_rate, max_audio_seconds, required=audio is not None)
        if frames is None and audio_seconds:
            duration = audio_seconds
    return Media(frames=frames, audio=wave, duration=float(duration))


# ----------------------------------------------------------------------------- face crops
FACE_DIR = "openface_face"


def face_file(name: str, video: str | Path | None, explicit: str | Path | None = None) -> Path | None:
    """Where a sample's OpenFace crops are: ``explicit`` when given, else next to the video folder:
    ``<video's grandparent>/openface_face/NAME.npy`` or the MER2025 release's ``openface_face/NAME/NAME.npy``."""
    if explicit:
        return Path(explicit)
    if video is None:
        return None
    folder = Path(video).parent.parent / FACE_DIR
    flat, nested = folder / f"{name}.npy", folder / name / f"{name}.npy"
    return nested if not flat.is_file() and nested.is_file() else flat


def load_faces(path: str | Path, n_frames: int = 8) -> np.ndarray:
    """``n_frames`` face crops uint8[n,H,W,3] taken uniformly (indices ``arange(0, T, T/n)``, as the authors'
    loader) from an OpenFace ``.npy`` array [T,H,W,3]; a missing or malformed file raises ``MediaError``."""
    path = Path(path)
    _check_file(path)
    try:
        faces = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise MediaError(path, f"not a face array (.npy without pickles): {e}") from None
    if faces.ndim != 4 or faces.shape[-1] != 3 or len(faces) == 0:
        raise MediaError(path, f"expected face crops [T>0,H,W,3], found shape {list(faces.shape)}")
    if faces.dtype != np.uint8:
        if not np.issubdtype(faces.dtype, np.number) or faces.min() < 0 or faces.max() > 255:
            raise MediaError(path, f"face crops must be 0..255 images, found dtype {faces.dtype}")
        faces = faces.astype(np.uint8)
    t = len(faces)
    idx = np.floor(np.arange(0, t, t / n_frames)).astype(int)[:n_frames]
    idx = np.concatenate([idx, np.full(n_frames - len(idx), idx[-1])]) if len(idx) < n_frames else idx
    return np.ascontiguousarray(faces[idx])
