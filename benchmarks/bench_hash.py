"""Cost of verifying an export's sha256 on load (affectgpt.model.artifact.verify_files), in GB/s.

    python benchmarks/bench_hash.py [--gb 3] [--shards 4] [--dir DIR]

Writes ``--shards`` files of ``--gb`` GB in total (random bytes: nothing compresses or dedups), then
times ``verify_files`` on them twice: right after writing (the files in the page cache, as a load
right after a download or a copy) and after asking the kernel to drop them from the cache
(``posix_fadvise DONTNEED``; cold, disk-bound, as a first load after a reboot). A 7B merged export in
bfloat16 is 15.2 GB in 4 shards; the line "7B estimate" scales the measured rate to it.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from affectgpt.model.artifact import sha256, verify_files

SEVEN_B_GB = 15.2  # Qwen2.5-7B-Instruct in bfloat16 (7.6e9 parameters x 2 bytes)


def write(folder: Path, gb: float, shards: int) -> dict[str, str]:
    block = os.urandom(1 << 24)
    per = int(gb * 1e9 / shards)
    names = {}
    for i in range(shards):
        path = folder / f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        with open(path, "wb") as f:
            left = per
            while left > 0:
                f.write(block[: min(left, len(block))])
                left -= len(block)
            f.flush()
            os.fsync(f.fileno())
        names[path.name] = sha256(path)
    return names


def drop_cache(folder: Path) -> None:
    for p in folder.iterdir():
        fd = os.open(p, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=3.0)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--dir", default=None, help="where to write the test files (default: a temporary folder)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        recorded = write(folder, args.gb, args.shards)
        size = sum(p.stat().st_size for p in folder.iterdir()) / 1e9
        print(f"{size:.2f} GB in {args.shards} files, {os.cpu_count()} CPUs")
        cases = (("warm (page cache)", lambda: None), ("cold (cache dropped)", lambda: drop_cache(folder)))
        for label, before in cases:
            before()
            t0 = time.perf_counter()
            verify_files(folder, recorded, folder / "affectgpt.json")
            s = time.perf_counter() - t0
            print(f"{label}: {s:.2f} s, {size / s:.2f} GB/s; "
                  f"7B estimate ({SEVEN_B_GB} GB): {SEVEN_B_GB * s / size:.1f} s")
        t0 = time.perf_counter()
        for p in sorted(folder.iterdir()):
            sha256(p)
        s = time.perf_counter() - t0
        print(f"one thread, warm: {s:.2f} s, {size / s:.2f} GB/s")


if __name__ == "__main__":
    main()
