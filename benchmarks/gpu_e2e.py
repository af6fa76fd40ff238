"""The users' commands end to end, each as its own process, into one table (benchmarks/gpu_e2e.sh runs it).

Random weights in the real shapes (``model.init=random``) on clips from the synthetic generator:
``python -m affectgpt.features``, then ``accelerate launch train.py experiment=affectgpt-mid`` on the
feature cache (uninterrupted, and stopped at half way then ``trainer.resume=auto``), the same on the
online encoders, a short ``affectgpt-7b`` ZeRO-2 run, ``infer.py`` on one clip and on a manifest
(``batch_size=16``), ``python -m affectgpt.export merge=true`` and ``infer.py`` from the export, and
the MER-UniBench runner (``python -m affectgpt.bench``) when the tree has it.

Per command: exit code, wall time, samples/s, peak memory (GPU: nvidia-smi's used memory, polled;
CPU: the process tree's peak RSS) and first/last training loss. Then the checks: every command
exits 0, the mid run's loss falls, resumed losses equal the uninterrupted ones, infer printed JSON.

``--dry-run``: the same commands on CPU with the tiny model and a handful of steps (CI runs it), so a
typo costs no device minute. Writes ``gpu_e2e[_dryrun].md`` and ``.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
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


# The numbers of each mode, side by side: (CPU rehearsal, GPU).
SIZES = {
    "n_train": (16, 256),
    "n_val": (4, 16),
    "n_test": (2, 16),
    "steps": (4, 200),
    "online_steps": (2, 40),
    "big_steps": (2, 10),
    "eval_samples": (2, 16),
    "eval_new_tokens": (2, 32),
    "infer_new_tokens": (4, 64),
}


def sizes(dry: bool) -> dict:
    """Model, steps and data per mode: tiny shapes for the CPU rehearsal, the real ones on the GPU."""
    n = {k: v[0] if dry else v[1] for k, v in SIZES.items()}
    if dry:
        tiny = ["model=tiny", "trainer.num_workers=0", "trainer.batch_size=4", "trainer.standardize_samples=16"]
        mid, big = [*tiny, "trainer.mixed_precision=no", "trainer.warmup_steps=2", "features.shard_size=8"], tiny
    else:
        real = ["model.init=random", "trainer.save_every=0", "trainer.eval_every=0", "trainer.num_workers=8"]
        mid = ["experiment=affectgpt-mid", *real, "trainer.warmup_steps=20"]
        big = ["experiment=affectgpt-7b", *real, "trainer.warmup_steps=2"]
    return dict(
        n,
        mid=mid,
        big=big,
        data=[f"data.{k}={n[k]}" for k in ("n_train", "n_val", "n_test")],
        eval=[f"eval.max_samples={n['eval_samples']}", f"eval.max_new_tokens={n['eval_new_tokens']}"],
        gen=[f"max_new_tokens={n['infer_new_tokens']}"],
    )


def plan(dry: bool, work: Path) -> list[Step]:
    """The commands in order; later ones read what earlier ones wrote."""
    s = sizes(dry)
    py, data = sys.executable, work / "data"
    common = [f"data.root={data}", *s["data"], *s["eval"]]
    launch = [py, "-m", "accelerate.commands.launch", "--config_file"]
    single, zero2 = "conf/accelerate/single_gpu.yaml", "conf/accelerate/deepspeed_zero2.yaml"
    ckpt, export = work / "mid-cached" / "checkpoints" / "final", work / "export-merged"
    clip = data / "clips" / "syn_test_00001.mp4"
    steps = [
        Step("features", [py, "-m", "affectgpt.features", *s["mid"], *common], clips=s["n_train"]),
        Step(
            "train mid, cached",
            [
                *launch,
                single,
                "train.py",
                *s["mid"],
                *common,
                f"trainer.max_steps={s['steps']}",
                f"output_dir={work / 'mid-cached'}",
                "trainer.resume=null",
            ],
            train_out=work / "mid-cached",
        ),
        Step(
            "train mid, stop half way",
            [
                *launch,
                single,
                "train.py",
                *s["mid"],
                *common,
                f"trainer.max_steps={s['steps']}",
                f"trainer.stop_at_step={s['steps'] // 2}",
                f"output_dir={work / 'mid-resumed'}",
                "trainer.resume=null",
            ],
            train_out=work / "mid-resumed",
        ),
        Step(
            "train mid, resume=auto",
            [
                *launch,
                single,
                "train.py",
                *s["mid"],
                *common,
                f"trainer.max_steps={s['steps']}",
                f"output_dir={work / 'mid-resumed'}",
                "trainer.resume=auto",
            ],
            train_out=work / "mid-resumed",
        ),
        Step(
            "train mid, online encoders",
            [
                *launch,
                single,
                "train.py",
                *s["mid"],
                *common,
                "features.cache_dir=null",
                f"trainer.max_steps={s['online_steps']}",
                f"output_dir={work / 'mid-online'}",
                "trainer.resume=null",
            ],
            train_out=work / "mid-online",
        ),
        Step(
            "train 7b, ZeRO-2",
            [
                *launch,
                zero2,
                "--num_processes",
                "1",
                "train.py",
                *s["big"],
                *common,
                f"trainer.max_steps={s['big_steps']}",
                f"output_dir={work / 'big-zero2'}",
                "trainer.resume=null",
            ],
            train_out=work / "big-zero2",
        ),
        Step(
            "infer one clip",
            [py, "infer.py", f"checkpoint={ckpt}", f"video={clip}", *s["gen"]],
            clips=1,
            json_stdout=True,
        ),
        Step(
            "infer manifest, batch 16",
            [
                py,
                "infer.py",
                f"checkpoint={ckpt}",
                f"manifest={data / 'test.jsonl'}",
                f"output={work / 'test-predictions.jsonl'}",
                "batch_size=16",
                *s["gen"],
            ],
            clips=s["n_test"],
        ),
        Step(
            "export merge=true", [py, "-m", "affectgpt.export", f"checkpoint={ckpt}", f"output={export}", "merge=true"]
        ),
        Step(
            "infer from the export",
            [py, "infer.py", f"checkpoint={export}", f"video={clip}", *s["gen"]],
            clips=1,
            json_stdout=True,
        ),
    ]
    if bench_present():  # written in parallel with this script: run it only where the tree has it
        steps.append(
            Step(
                "MER-UniBench runner",
                [
                    py,
                    "-m",
                    "affectgpt.bench",
                    f"checkpoint={ckpt}",
                    f"root={work / 'unibench'}",
                    f"output={work / 'bench'}",
                    "check_sizes=false",
                    *os.environ.get("BENCH_ARGS", "").split(),
                ],
            )
        )
    return steps


def write_bench_root(data: Path, root: Path) -> Path:
    """A tiny MER-UniBench root for the runner: the synthetic test clips as OV-MERD+ in the plain JSONL form
    (``ovmerdplus_test.jsonl``: name, openset gold, video path relative to the file)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / "ovmerdplus_test.jsonl").open("w", encoding="utf-8") as f:
        for line in (data / "test.jsonl").read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            f.write(json.dumps({"name": row["name"], "openset": row["emotions"],
                                "video": str((data / row["video"]).resolve())}) + "\n")
    return root


def bench_present() -> bool:
    return (ROOT / "affectgpt" / "bench").is_dir() or (ROOT / "affectgpt" / "bench.py").is_file()


def decoders() -> str:
    """Which video decoder affectgpt.data.media uses here: decord first, PyAV where decord is absent or wrong."""
    have = [m for m in ("decord", "av") if importlib.util.find_spec(m) is not None]
    if "av" not in have:
        return "none: PyAV is missing (affectgpt.data.media needs it)"
    return "decord, PyAV fallback" if "decord" in have else "PyAV (decord absent)"


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


def checks(rows: list[Row]) -> list[tuple[str, bool]]:
    by = {r.name: r for r in rows}
    cached, resumed = by["train mid, cached"], by["train mid, resume=auto"]
    out = [
        ("every command exits 0", all(r.rc == 0 for r in rows)),
        ("the mid run's loss falls", bool(cached.losses) and cached.last_loss < cached.first_loss),
        (
            "resumed losses equal the uninterrupted ones",
            bool(cached.losses)
            and len(resumed.losses) == len(cached.losses)
            and max(abs(a - b) for a, b in zip(cached.losses, resumed.losses, strict=False)) <= 1e-6,
        ),
        (
            "infer prints JSON from the checkpoint and from the export",
            all(by[n].rc == 0 and by[n].note.startswith("JSON") for n in ("infer one clip", "infer from the export")),
        ),
    ]
    return out


def table(rows: list[Row], verdicts: list[tuple[str, bool]], header: list[str]) -> str:
    fmt = lambda v, spec: "" if v is None else format(v, spec)  # noqa: E731
    lines = [
        *header,
        "",
        "| command | exit | wall s | samples/s | peak mem MiB | first loss | last loss | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.name} | {r.rc} | {r.wall_s:.1f} | {fmt(r.samples_per_s, '.2f')} | "
            f"{fmt(r.peak_mem_mib, '.0f')} | {fmt(r.first_loss, '.4f')} | {fmt(r.last_loss, '.4f')} | {r.note} |"
        )
    lines += ["", *(f"- [{'x' if ok else ' '}] {text}" for text, ok in verdicts)]
    return "\n".join(lines) + "\n"


def environment_header(dry: bool) -> list[str]:
    import platform

    import torch

    card = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    versions = []
    for name in ("torch", "transformers", "peft", "accelerate", "deepspeed", "av", "decord"):
        try:
            versions.append(f"{name} {__import__(name).__version__}")
        except Exception:  # noqa: BLE001 - absent or broken: the table says so
            versions.append(f"{name} absent")
    return [
        f"# gpu_e2e{' (dry run: tiny shapes on CPU)' if dry else ''}",
        "",
        f"- device: {card}; Python {platform.python_version()}",
        f"- {', '.join(versions)}",
        f"- video decoder: {decoders()}",
        f"- MER-UniBench runner: {'run' if bench_present() else 'not in this tree (skipped)'}",
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="tiny shapes on CPU: rehearse every command")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: OUT/gpu_e2e-work)")
    ap.add_argument("--only", nargs="*", default=None, help="run only the steps whose names start with these")
    args = ap.parse_args(argv)
    stem = "gpu_e2e_dryrun" if args.dry_run else "gpu_e2e"
    work = args.work or args.out / f"{stem}-work"
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(ROOT)])),
        "HF_HUB_OFFLINE": "1",
        "WANDB_MODE": "disabled",
        "TOKENIZERS_PARALLELISM": "false",
    }
    if args.dry_run:
        env.update(CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"))
    rows = []
    for step in plan(args.dry_run, work):
        if args.only and not any(step.name.startswith(o) for o in args.only):
            continue
        if step.name == "MER-UniBench runner":  # its test set: the synthetic clips written by the steps before
            write_bench_root(work / "data", work / "unibench")
        row = run_step(step, logs, env)
        rows.append(row)
        print(f"{row.name}: exit {row.rc}, {row.wall_s:.1f} s {row.note}", file=sys.stderr, flush=True)
    verdicts = checks(rows) if not args.only else [("every command exits 0", all(r.rc == 0 for r in rows))]
    text = table(rows, verdicts, environment_header(args.dry_run))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.md").write_text(text)
    (args.out / f"{stem}.json").write_text(
        json.dumps({"rows": [asdict(r) for r in rows], "checks": dict(verdicts)}, indent=1, default=str)
    )
    print(text)
    return 0 if all(ok for _, ok in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
