"""Media decoding figures: clips/s per core, RSS after 1,000 decodes, DataLoader throughput,
and the cost of a one-hour file.

    python benchmarks/bench_media.py [--clips 4] [--repeat 20] [--rss-iters 1000] [--long-minutes 60] [--out bench.json]

Clips are written here with PyAV (10 s, 640x360, 30 fps H.264 + AAC 44.1 kHz stereo), so
the numbers need no dataset. Every decoder runs single-threaded, so clips/s is per core.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere


def write_clip(path: Path, seconds: float, fps: int, width: int, height: int, sample_rate: int, channels: int) -> Path:
    """A moving-gradient H.264 clip with a stereo/mono AAC tone, written by PyAV."""
    layout = "mono" if channels == 1 else "stereo"
    with av.open(str(path), "w") as c:
        vs = c.add_stream("h264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        as_ = c.add_stream("aac", rate=sample_rate, layout=layout)
        x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
        for i in range(int(seconds * fps)):
            img = np.broadcast_to((x + 4 * i) % 256, (height, width, 3)).astype(np.uint8)
            for p in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
        n = int(seconds * sample_rate)
        wave = np.sin(2 * np.pi * 440 * np.arange(n) / sample_rate).astype(np.float32) * 0.3
        wave = np.repeat(wave[None], channels, 0)
        step = as_.codec_context.frame_size or 1024
        for s in range(0, n, step):
            fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[:, s : s + step]), format="fltp", layout=layout)
            fr.sample_rate, fr.pts = sample_rate, s
            for p in as_.encode(fr):
                c.mux(p)
        for p in as_.encode():
            c.mux(p)
    return path


def decode_load_media(path: Path) -> None:
    from affectgpt.data.media import load_media

    load_media(path, n_frames=8)


def decode_decord(path: Path) -> None:
    """decord alone: VideoReader.get_batch for 8 frames + AudioReader at 16 kHz mono."""
    import decord

    vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    n = len(vr)
    vr.get_batch([int((i + 0.5) * n / 8) for i in range(8)]).asnumpy()
    decord.AudioReader(str(path), ctx=decord.cpu(0), sample_rate=16000, mono=True)[:].asnumpy()


def decode_pyav_plain(path: Path) -> None:
    """The plain PyAV baseline: decode every frame in order and keep 8, resample all audio."""
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        n = vs.frames
        want = {int((i + 0.5) * n / 8) for i in range(8)}
        [f.to_ndarray(format="rgb24") for i, f in enumerate(c.decode(vs)) if i in want]
    with av.open(str(path)) as c:
        r = av.AudioResampler(format="flt", layout="mono", rate=16000)
        chunks = [o.to_ndarray() for f in c.decode(audio=0) for o in r.resample(f)]
        np.concatenate(chunks, axis=1)


def clips_per_second(fn, clips: list[Path], repeat: int) -> float:
    fn(clips[0])  # warm-up: imports, page cache
    times = []
    for _ in range(repeat):
        for p in clips:
            t0 = time.perf_counter()
            fn(p)
            times.append(time.perf_counter() - t0)
    return 1.0 / statistics.median(times)


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def rss_growth(fn, path: Path, iters: int) -> dict:
    """RSS after 10% of the iterations (allocator warmed up) and at the end."""
    warm = max(1, iters // 10)
    for _ in range(warm):
        fn(path)
    after_warm = rss_mb()
    for _ in range(iters - warm):
        fn(path)
    end = rss_mb()
    return {
        "iters": iters,
        "rss_after_warmup_mb": round(after_warm, 1),
        "rss_end_mb": round(end, 1),
        "growth_mb": round(end - after_warm, 1),
    }


class ClipDataset:
    """A plain map-style dataset: one ``load_media`` per item."""

    def __init__(self, clips: list[Path], length: int):
        self.clips, self.length = clips, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        from affectgpt.data.media import load_media

        m = load_media(self.clips[i % len(self.clips)], n_frames=8)
        return m.frames, m.audio


def loader_clips_per_second(clips: list[Path], workers: int, items: int) -> float:
    import torch
    from torch.utils.data import DataLoader

    torch.set_num_threads(1)
    dl = DataLoader(ClipDataset(clips, items), batch_size=None, num_workers=workers)
    t0 = time.perf_counter()
    n = sum(1 for _ in dl)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--rss-iters", type=int, default=1000)
    ap.add_argument("--loader-items", type=int, default=96)
    ap.add_argument("--long-minutes", type=float, default=60.0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    results: dict = {"cpu_count": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        t0 = time.perf_counter()
        clips = [write_clip(d / f"c{i}.mp4", 10, 30, 640, 360, 44100, 2) for i in range(args.clips)]
        print(f"wrote {len(clips)} 10 s 360p clips in {time.perf_counter() - t0:.1f} s")
        for name, fn in (
            ("load_media", decode_load_media),
            ("decord", decode_decord),
            ("pyav_plain", decode_pyav_plain),
        ):
            results[f"clips_per_s_{name}"] = round(clips_per_second(fn, clips, args.repeat), 2)
            print(f"{name:>12}: {results[f'clips_per_s_{name}']:.2f} clips/s per core (8 frames + 16 kHz audio)")
        results["rss_load_media"] = rss_growth(decode_load_media, clips[0], args.rss_iters)
        print(f"RSS, load_media x{args.rss_iters}: {results['rss_load_media']}")
        results["rss_decord"] = rss_growth(decode_decord, clips[0], args.rss_iters)
        print(f"RSS, decord alone x{args.rss_iters}: {results['rss_decord']}")
        for w in (0, 1, 2):
            results[f"loader_clips_per_s_workers_{w}"] = round(loader_clips_per_second(clips, w, args.loader_items), 2)
            print(f"DataLoader, {w} workers: {results[f'loader_clips_per_s_workers_{w}']:.2f} clips/s")
        if args.long_minutes > 0:
            from affectgpt.data.media import load_media

            t0 = time.perf_counter()
            long = write_clip(d / "long.mp4", args.long_minutes * 60, 1, 64, 36, 8000, 1)
            print(f"wrote a {args.long_minutes:g}-minute 64x36 clip in {time.perf_counter() - t0:.1f} s")
            short = write_clip(d / "short.mp4", 10, 1, 64, 36, 8000, 1)
            for key, p in (("short_10s", short), ("long", long)):
                load_media(p, max_audio_seconds=30)
                t0 = time.perf_counter()
                for _ in range(5):
                    load_media(p, n_frames=8, max_audio_seconds=30)
                results[f"load_media_ms_{key}"] = round((time.perf_counter() - t0) / 5 * 1000, 1)
            print(f"load_media (8 frames, 30 s audio): 10 s clip {results['load_media_ms_short_10s']} ms, "
                  f"{args.long_minutes:g}-min clip {results['load_media_ms_long']} ms")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
