"""The users' commands end to end, each as its own process, into one table (benchmarks/gpu_e2e.sh runs it).

Random weights in the real shapes (``model.init=random``) on clips from the synthetic generator:
``python -m affectgpt.apps.features``, then ``accelerate launch train.py experiment=affectgpt-mid`` on the
feature cache (uninterrupted, and stopped at half way then ``trainer.resume=auto``), the same on the
online encoders, a short ``affectgpt-7b`` ZeRO-2 run, ``infer.py`` on one clip and on a manifest
(``batch_size=16``), ``python -m affectgpt.export merge=true`` and ``infer.py`` from the export, and
the MER-UniBench runner (``python -m affectgpt.apps.bench``).

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
import sys
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from gpu_e2e_run import Row, Step, run_step  # noqa: E402

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


# The commands in order; later ones read what earlier ones wrote. Columns: name, launcher (None: plain
# python; "single" / "zero2": accelerate launch with that config), the command, the model overrides ("mid" /
# "big" / None), the command's own arguments ({placeholders} from sizes() and the paths below), what the
# row measures (clips: a sizes() key or a number; train_out: the training output folder; json_stdout).
PLAN = [
    ("features", None, ["-m", "affectgpt.apps.features"], "mid", [], dict(clips="n_train")),
    ("train mid, cached", "single", ["train.py"], "mid",
     ["trainer.max_steps={steps}", "output_dir={work}/mid-cached", "trainer.resume=null"],
     dict(train_out="mid-cached")),
    ("train mid, stop half way", "single", ["train.py"], "mid",
     ["trainer.max_steps={steps}", "trainer.stop_at_step={half}", "output_dir={work}/mid-resumed",
      "trainer.resume=null"], dict(train_out="mid-resumed")),
    ("train mid, resume=auto", "single", ["train.py"], "mid",
     ["trainer.max_steps={steps}", "output_dir={work}/mid-resumed", "trainer.resume=auto"],
     dict(train_out="mid-resumed")),
    ("train mid, online encoders", "single", ["train.py"], "mid",
     ["features.cache_dir=null", "trainer.max_steps={online_steps}", "output_dir={work}/mid-online",
      "trainer.resume=null"], dict(train_out="mid-online")),
    ("train 7b, ZeRO-2", "zero2", ["train.py"], "big",
     ["trainer.max_steps={big_steps}", "output_dir={work}/big-zero2", "trainer.resume=null"],
     dict(train_out="big-zero2")),
    ("infer one clip", None, ["infer.py"], None, ["checkpoint={ckpt}", "video={clip}", "{gen}"],
     dict(clips=1, json_stdout=True)),
    ("infer manifest, batch 16", None, ["infer.py"], None,
     ["checkpoint={ckpt}", "manifest={data}/test.jsonl", "output={work}/test-predictions.jsonl", "batch_size=16",
      "{gen}"], dict(clips="n_test")),
    ("export merge=true", None, ["-m", "affectgpt.export"], None,
     ["checkpoint={ckpt}", "output={export}", "merge=true"], {}),
    ("infer from the export", None, ["infer.py"], None, ["checkpoint={export}", "video={clip}", "{gen}"],
     dict(clips=1, json_stdout=True)),
    ("MER-UniBench runner", None, ["-m", "affectgpt.apps.bench"], None,
     ["checkpoint={ckpt}", "root={work}/unibench", "output={work}/bench", "check_sizes=false", "{bench_args}"], {}),
]
LAUNCH = {"single": ["--config_file", "conf/accelerate/single_gpu.yaml"],
          "zero2": ["--config_file", "conf/accelerate/deepspeed_zero2.yaml", "--num_processes", "1"]}


def plan(dry: bool, work: Path) -> list[Step]:
    """The rows of PLAN as commands for this mode."""
    s = sizes(dry)
    py, data = sys.executable, work / "data"
    common = [f"data.root={data}", *s["data"], *s["eval"]]
    values = {**{k: v for k, v in s.items() if isinstance(v, int)}, "half": s["steps"] // 2, "work": work,
              "data": data, "ckpt": work / "mid-cached" / "checkpoints" / "final", "export": work / "export-merged",
              "clip": data / "clips" / "syn_test_00001.mp4"}
    lists = {"{gen}": s["gen"], "{bench_args}": os.environ.get("BENCH_ARGS", "").split()}
    steps = []
    for name, launcher, command, model, args, measure in PLAN:
        own = [x for a in args for x in (lists[a] if a in lists else [a.format(**values)])]
        head = [py, "-m", "accelerate.commands.launch", *LAUNCH[launcher]] if launcher else [py]
        argv = [*head, *command, *(s[model] + common if model else []), *own]
        clips = measure.get("clips", 0)
        steps.append(Step(name, argv, train_out=work / measure["train_out"] if "train_out" in measure else None,
                          clips=s[clips] if isinstance(clips, str) else clips,
                          json_stdout=measure.get("json_stdout", False)))
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


def decoders() -> str:
    """Which video decoder affectgpt.data.media uses here: decord first, PyAV where decord is absent or wrong."""
    have = [m for m in ("decord", "av") if importlib.util.find_spec(m) is not None]
    if "av" not in have:
        return "none: PyAV is missing (affectgpt.data.media needs it)"
    return "decord, PyAV fallback" if "decord" in have else "PyAV (decord absent)"


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
