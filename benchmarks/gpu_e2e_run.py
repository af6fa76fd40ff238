"""Running one command of the GPU end-to-end plan (``benchmarks/gpu_e2e.py``): its exit code, wall time,
peak memory (GPU: nvidia-smi polled; CPU: the process tree's peak RSS), and for training its losses and
samples/s read back from the checkpoints it wrote."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Step:
    name: str
    argv: list[str]
    train_out: Path | None = None  # training output folder: losses and samples/s come from its checkpoints
    clips: int = 0  # clips processed, for clips/s (features, inference)
    json_stdout: bool = False  # the last stdout line must be one JSON object


@dataclass
class Row:
    name: str
    command: str
    rc: int
    wall_s: float
    samples_per_s: float | None = None
    peak_mem_mib: float | None = None
    first_loss: float | None = None
    last_loss: float | None = None
    note: str = ""
    losses: list[float] = field(default_factory=list)


class GpuMemory:
    """Peak of nvidia-smi's used memory while a command runs (every 0.2 s); None without nvidia-smi."""

    def __init__(self):
        self.peak, self._stop = None, threading.Event()
        self.ok = shutil.which("nvidia-smi") is not None

    def _poll(self):
        while not self._stop.wait(0.2):
            r = subprocess.run(
                ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
            )
            if r.returncode == 0 and r.stdout.strip():
                used = max(float(x) for x in r.stdout.split())
                self.peak = used if self.peak is None else max(self.peak, used)

    def __enter__(self):
        if self.ok:
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self.ok:
            self._thread.join()


def train_stats(out: Path) -> tuple[list[float], float | None]:
    """Losses of the newest checkpoint (final, else the last step-N) and samples/s over its history."""
    folders = sorted((out / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    folder = out / "checkpoints" / "final" if (out / "checkpoints" / "final").is_dir() else (folders or [None])[-1]
    if folder is None:
        return [], None
    state = json.loads((folder / "trainer_state.json").read_text())
    rows = [h for h in state["history"] if "loss" in h]
    cfg = (folder / "config.yaml").read_text()
    batch = int(next(line.split(":")[1] for line in cfg.splitlines() if line.strip().startswith("batch_size:")))
    # this process's rows only: a resumed run restarts its wall clock, so they follow the last drop of wall_s
    start = max([0] + [i for i in range(1, len(rows)) if rows[i]["wall_s"] < rows[i - 1]["wall_s"]])
    tail, rate = rows[start:], None
    if len(tail) > 1 and tail[-1]["wall_s"] > tail[0]["wall_s"]:
        rate = (tail[-1]["step"] - tail[0]["step"]) * batch / (tail[-1]["wall_s"] - tail[0]["wall_s"])
    return [r["loss"] for r in rows], rate


def run_step(step: Step, logs: Path, env: dict) -> Row:
    log = logs / f"{step.name.split(',')[0].replace(' ', '_')}-{abs(hash(step.name)) % 10**6}.log"
    t0 = time.perf_counter()
    with GpuMemory() as gpu, open(log, "w") as err:
        proc = subprocess.Popen(step.argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        stdout = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)  # this command's own peak RSS (Linux: KiB), with its children's
    wall = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    row = Row(
        step.name,
        " ".join(_short(a) for a in step.argv),
        rc,
        round(wall, 2),
        peak_mem_mib=gpu.peak if gpu.peak is not None else round(usage.ru_maxrss / 1024, 1),
    )
    if step.train_out is not None:
        row.losses, row.samples_per_s = train_stats(step.train_out)
        if row.losses:
            row.first_loss, row.last_loss = row.losses[0], row.losses[-1]
    elif step.clips and rc == 0:
        row.samples_per_s = step.clips / wall
    if step.json_stdout and rc == 0:
        try:
            obj = json.loads(stdout.strip().splitlines()[-1])
            row.note = f"JSON: {len(obj.get('emotions') or [])} emotions, {len(obj.get('description') or '')} chars"
        except (ValueError, IndexError):
            row.rc, row.note = 97, "no JSON object on stdout"
    if rc != 0:
        row.note = (row.note + " " if row.note else "") + f"log: {log.name}: " + _last_line(log)
    return row


def _short(arg: str) -> str:
    return arg.replace(str(ROOT) + "/", "").replace(sys.executable, "python")


def _last_line(log: Path) -> str:
    lines = [x for x in log.read_text(errors="replace").splitlines() if x.strip()]
    return lines[-1][:200] if lines else "(empty)"
