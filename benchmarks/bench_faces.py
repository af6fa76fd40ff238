"""Face-crop speed: ``python -m affectgpt.apps.faces`` on clips of a real photograph, frames/s and clips/s.

    python benchmarks/bench_faces.py [--clips 4] [--seconds 3] [--fps 25] [--width 640] [--height 480] [--workers 1,2]

Each clip is scikit-image's astronaut photograph panning and zooming (her face about a third of the
frame height), H.264 at ``--fps``. The command runs as a user runs it (a subprocess, fresh output
folder per worker count, models loaded in each process), so the time includes start-up. Besides wall-clock
rates it prints the CPU time the command used per frame, which does not depend on other jobs on the machine.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_clips(folder: Path, n: int, seconds: float, fps: int, width: int, height: int) -> None:
    import skimage.data

    from affectgpt.data.synthetic import write_clip

    img = Image.fromarray(skimage.data.astronaut())
    frames_per_clip = round(seconds * fps)
    for c in range(n):
        frames = []
        for i in range(frames_per_clip):
            u = i / max(1, frames_per_clip - 1)
            cx, cy, h = 228 + 40 * u - 20 * c, 200 + 20 * u, 330 - 60 * u
            w = h * width / height
            box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
            frames.append(np.asarray(img.transform((width, height), Image.EXTENT, box, Image.BILINEAR)))
        write_clip(folder / f"clip{c}.mp4", np.stack(frames), None, fps=fps, sample_rate=16000)


def stage_times(width: int, height: int, repeat: int = 10) -> str:
    """CPU milliseconds per frame of each step, in this process, on the astronaut at ``width`` x ``height``."""
    import skimage.data

    from affectgpt.data.faces import FaceCropper

    cropper = FaceCropper()
    img = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((width, height), Image.BILINEAR))
    cropper.crop(img)  # warm-up
    pts = cropper.landmarks(img)
    steps = {"detect": lambda: cropper.detector(img, 0), "detect + 68 landmarks": lambda: cropper.landmarks(img),
             "align + mask": lambda: cropper.align(img, pts)}
    times = {}
    for name, step in steps.items():
        t0 = time.process_time()
        for _ in range(repeat):
            step()
        times[name] = 1000 * (time.process_time() - t0) / repeat
    return ", ".join(f"{k} {v:.1f} ms" for k, v in times.items())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--workers", default="1,2")
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        videos = Path(tmp) / "video"
        make_clips(videos, args.clips, args.seconds, args.fps, args.width, args.height)
        frames = args.clips * round(args.seconds * args.fps)
        print(f"{args.clips} clips x {args.seconds:g} s at {args.fps} fps, {args.width}x{args.height}: {frames} frames "
              f"({os.cpu_count()} CPUs)")
        for workers in [int(w) for w in args.workers.split(",")]:
            out = Path(tmp) / f"out{workers}"
            t0, cpu0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
            r = subprocess.run([sys.executable, "-m", "affectgpt.apps.faces", f"input={videos}", f"output={out}",
                                f"workers={workers}"], cwd=ROOT, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)  # the command and its workers
            if r.returncode != 0:
                print(r.stderr[-2000:], file=sys.stderr)
                return 1
            line = next(ln for ln in r.stderr.splitlines() if ln.startswith("faces:") and " clips: " in ln)
            inner = re.search(r"\(([\d.]+) frames/s", line).group(1)
            # workers=N>1 run under multiprocessing's forkserver, not as children of this process: their
            # CPU time is not in RUSAGE_CHILDREN, so it is reported for one worker only
            per_cpu = (f"; {frames / cpu:.1f} frames per CPU-second ({1000 * cpu / frames:.0f} ms CPU per frame, "
                       "start-up included)") if workers == 1 else ""
            print(f"workers={workers}: {frames / wall:.1f} frames/s, {args.clips / wall:.2f} clips/s wall "
                  f"(start-up included); {inner} frames/s inside the run{per_cpu}; load average "
                  f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"CPU per {args.width}x{args.height} frame: {stage_times(args.width, args.height)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
