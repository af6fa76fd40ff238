"""Long files without decoding them whole: a time range of a clip, and the audio track in chunks.

``load_range`` is ``media.load_media`` for the part ``[start, end)`` of a file (a timeline
segment): it seeks to the keyframe before ``start`` and decodes forward to ``end`` only, so a
segment of an hour-long video costs what a short clip costs. Frames are sampled as in
``load_media`` (the centres of ``n_frames`` equal parts of the range). ``audio_chunks`` yields the
audio track as 16 kHz mono pieces of ``chunk_seconds`` for the speech-activity pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from affectgpt.data.media import Media, MediaError, _check_file, _open, _probe, _segment_centres, _target_size


def _mono(frame) -> np.ndarray:
    a = frame.to_ndarray()
    return a.mean(axis=0, dtype=np.float32) if a.shape[0] > 1 else a[0].astype(np.float32, copy=False)


def audio_chunks(path: str | Path, sample_rate: int = 16000, chunk_seconds: float = 30.0,
                 start: float = 0.0, end: float | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """``(t0, samples)`` pieces of the audio track from ``start`` to ``end`` (seconds), mono
    float32 at ``sample_rate``, each ``chunk_seconds`` long but the last; ``t0`` is the piece's
    start time. Raises ``MediaError`` when there is no audio stream."""
    path = Path(path)
    _check_file(path)
    size = max(1, int(round(chunk_seconds * sample_rate)))
    with _open(path) as c:
        if not c.streams.audio:
            raise MediaError(path, "no audio stream")
        stream = c.streams.audio[0]
        tb = stream.time_base
        if start > 0:
            c.seek(int(start / tb), stream=stream, backward=True, any_frame=False)
        resampler = av.AudioResampler(format="fltp", rate=sample_rate)
        buf: list[np.ndarray] = []
        have, t_buf, t_first = 0, None, None
        limit = None if end is None else int(round((end - start) * sample_rate))
        emitted = 0

        def pieces(final: bool):
            nonlocal buf, have, t_buf, emitted
            data = np.concatenate(buf) if buf else np.zeros(0, np.float32)
            pos = 0
            while data.size - pos >= size or (final and data.size > pos):
                piece = data[pos : pos + size]
                if limit is not None:
                    piece = piece[: max(0, limit - emitted)]
                if piece.size:
                    yield t_buf + pos / sample_rate, piece
                emitted += piece.size
                pos += size
            buf, have = ([data[pos:]] if pos < data.size else []), max(0, data.size - pos)
            t_buf = t_buf + pos / sample_rate

        try:
            for frame in c.decode(stream):
                t = float(frame.pts * tb) if frame.pts is not None else None
                frame.pts = None  # the resampler counts samples itself
                for out in resampler.resample(frame):
                    a = _mono(out)
                    if t_first is None:  # drop what lies before ``start`` (the seek lands on an earlier packet)
                        t_first = t if t is not None else 0.0
                        skip = max(0, int(round((start - t_first) * sample_rate)))
                        a, t_buf = a[skip:], t_first + skip / sample_rate
                    buf.append(a)
                    have += a.size
                if have >= size:
                    yield from pieces(final=False)
                if limit is not None and emitted >= limit:
                    return
            for out in resampler.resample(None):
                buf.append(_mono(out))
            if t_buf is not None:
                yield from pieces(final=True)
        except av.error.FFmpegError as e:
            raise MediaError(path, f"audio decode failed ({getattr(e, 'strerror', None) or e})") from None


def _frames_range(path: Path, n_frames: int, size: tuple[int, int], rotation: int, start: float,
                  end: float) -> np.ndarray:
    """``n_frames`` frames at the centres of equal parts of ``[start, end)``: the last frame shown
    at or before each centre (the first decoded one for a centre before it)."""
    width, height = size
    targets = _segment_centres(start, end - start, n_frames)
    kw = {} if width < 0 else {"width": width, "height": height}
    chosen: list[np.ndarray | None] = [None] * n_frames
    with _open(path) as c:
        vs = c.streams.video[0]
        vs.codec_context.thread_count = 1
        c.seek(int(max(0.0, start) / vs.time_base), stream=vs, backward=True, any_frame=False)
        prev, i = None, 0
        try:
            for frame in c.decode(vs):
                if frame.pts is None:
                    continue
                t = float(frame.pts * vs.time_base)
                while i < n_frames and t > targets[i]:
                    chosen[i] = prev if prev is not None else frame
                    i += 1
                if i >= n_frames:
                    break
                prev = frame
        except av.error.FFmpegError as e:
            raise MediaError(path, f"video decode failed ({getattr(e, 'strerror', None) or e})") from None
        if prev is None and chosen[0] is None:
            raise MediaError(path, f"no video frame between {start:.2f} s and {end:.2f} s")
        for j in range(i, n_frames):  # centres after the last frame: the last frame
            chosen[j] = prev
        arrays = {}
        out = []
        for f in chosen:
            if id(f) not in arrays:
                arr = f.to_ndarray(format="rgb24", **kw)
                arrays[id(f)] = np.ascontiguousarray(np.rot90(arr, k=rotation // 90)) if rotation else arr
            out.append(arrays[id(f)])
    return np.stack(out)


def load_range(video: str | Path | None, audio: str | Path | None, start: float, end: float, n_frames: int = 8,
               sample_rate: int = 16000, frame_size: int | None = None) -> Media:
    """``load_media`` for ``[start, end)`` seconds of the file(s)."""
    if not end > start >= 0:
        raise MediaError(video or audio or "<no file>", f"bad time range {start}..{end} s")
    frames = None
    audio_source = Path(audio) if audio is not None else None
    if video is not None:
        vpath = Path(video)
        _check_file(vpath)
        probe = _probe(vpath)
        if probe.has_video:
            frames = _frames_range(vpath, n_frames, _target_size(probe.width, probe.height, frame_size),
                                   probe.rotation, start, end)
        if audio_source is None and probe.has_audio:
            audio_source = vpath
    wave = None
    if audio_source is not None:
        parts = [a for _, a in audio_chunks(audio_source, sample_rate, chunk_seconds=end - start + 1.0,
                                            start=start, end=end)]
        wave = np.concatenate(parts) if parts else None
        if wave is not None and wave.size == 0:
            wave = None
    return Media(frames=frames, audio=wave, duration=float(end - start))
