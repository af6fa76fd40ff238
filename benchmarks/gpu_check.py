"""One GPU check: training throughput, MFU and peak memory of the mid and 7B configs, DeepSpeed
ZeRO-2 on one GPU, and single-clip inference latency of the 7B shape; random weights in the
real architectures (CLIP ViT-L/14, Whisper large-v3, Qwen2.5-7B; no downloads).

    python benchmarks/gpu_check.py --out DIR [--budget-s 420] [--peak-tflops 989] [--only KEY,...]
    python benchmarks/gpu_check.py --dry-run --out DIR      # CPU, tiny config, every code path

Prints ONE Markdown table and rewrites DIR/gpu_check.md and DIR/gpu_check.json after every row,
so a killed run leaves its finished rows. Rows run in order of importance and are reported
"skipped: budget" once --budget-s is spent; a row that runs out of GPU memory is reported as
OOM (and retried once at half the batch), never a crash.

Training rows run the training recipe's own step (``TrainRecipe._train_step`` through
``recipe_step``: Accelerate's mixed precision, the target-token normalisation, gradient
clipping, fused AdamW, the LR schedule) on micro-batches built here. Each training row:
synthetic clips (random frames in 0..1 and a few seconds of random audio), a
long random target so that every sequence has exactly ``seq`` LLM tokens, the batch on the GPU
before timing; ``warmup`` steps, then ``steps`` timed steps between ``torch.cuda.synchronize``.
A step is forward (``AffectGPT.forward``: summed target loss / target count), backward and AdamW
(fused on CUDA) over the trainable parameters, in bf16 (``--mixed-precision`` is passed as
``trainer.mixed_precision``). "EMER-length" rows draw each sample's length uniformly in
[0.5, 1.5) × seq (seeded) and run them padded per micro-batch or packed into rows of 1,024
tokens (``data.packing=true``); samples/s counts samples, tokens/s real tokens. "online": frames and audio go through
the frozen encoders every step; "cached": their features were computed once and are passed as
``video_feats``/``audio_feats``. Peak memory is ``torch.cuda.max_memory_allocated`` reset per row.

MFU counts model FLOPs with the formula of ``affectgpt.model.flops`` (its docstring says what is
counted and what is not); the training log reports it too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "benchmarks"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))
import gpu_check_infer  # noqa: E402
import gpu_check_train  # noqa: E402
from gpu_check_rows import Result, Row, describe, dry_rows, gpu_rows  # noqa: E402
from gpu_check_setup import GIB, Ctx, free, peak_gib, reset_peak  # noqa: E402

from affectgpt.model import flops  # noqa: E402

RUNNERS = {"train": gpu_check_train.train_row, "zero2": gpu_check_train.zero2_row, "infer": gpu_check_infer.infer_row,
           "decode": gpu_check_infer.decode_row, "batch-decode": gpu_check_infer.batch_decode_row}


def run_row(row: Row, ctx: Ctx) -> Result:
    """One row. Out of memory → status "OOM"; any other exception → "error: ..." with its
    traceback on stderr (one broken row must not cost the rest of a GPU lease); no budget left
    → "skipped: budget"."""
    res = Result(row.key, describe(row), batch=row.batch, seq=row.seq)
    if ctx.seconds_left() <= 0:
        res.status = "skipped: budget"
        return res
    if row.kernels != "none":
        from affectgpt.model.kernels import liger_unavailable

        why = liger_unavailable(ctx.device)
        if why:
            res.status = f"skipped: {why}"
            return res
    failure = None
    reset_peak(ctx.device)
    try:
        RUNNERS[row.kind](row, ctx, res)
    except torch.OutOfMemoryError as e:
        failure = ("OOM", str(e).splitlines()[0][:200] if str(e) else "out of memory")
    except Exception as e:  # noqa: BLE001  reported in the table, the run goes on
        traceback.print_exc()
        failure = (f"error: {type(e).__name__}", str(e).splitlines()[0][:200] if str(e) else "")
    res.peak_gib = peak_gib(ctx.device)
    if failure is not None:
        # The traceback that held the row's tensors is gone here; drop grads and cached blocks.
        for m in ctx.models.values():
            m.zero_grad(set_to_none=True)
        free(ctx.device)
        res.status, res.extra["error"] = failure
        res.step_s = res.samples_s = res.tokens_s = res.tflops = res.mfu = None
    return res


def fmt(x, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def format_table(results: list[Result], header: dict) -> str:
    lines = [f"GPU check: {header['device']}; torch {header['torch']}, transformers {header['transformers']}; "
             f"peak bf16 {fmt(header['peak_tflops'], '.0f')} TFLOP/s; mixed precision {header['mixed_precision']}"
             + ("; DRY RUN (CPU, tiny config)" if header["dry_run"] else ""), "",
             "| row | what | batch x seq | step s | samples/s | tokens/s | TFLOP/s | MFU | peak GiB | status / notes |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        note = r.status
        if r.key.endswith("infer") and r.status == "ok":
            e = r.extra
            note = (
                f"encode {e['encode_ms']:.0f} ms, prefill {e['prefill_ms']:.0f} ms ({e['prompt_tokens']} tokens), "
                f"decode {fmt(e['decode_tokens_s'], '.1f')} tok/s, "
                f"{e['new_tokens']} tokens end to end {e['end_to_end_s']:.2f} s"
            )
        elif r.status == "ok" and "identical" in r.extra:
            e = r.extra
            note = (f"decode {e['decode_tokens_s']:.1f} tok/s, prefill {e['prefill_ms']:.0f} ms, "
                    f"warm-up {e['warmup_s']:.1f} s, greedy ids {'identical' if e['identical'] else 'DIFFER'} "
                    "to generate()" + (f"; {e['note']}" if e.get("note") else ""))
        elif r.status == "ok" and "clips_s" in r.extra:
            note = f"{r.extra['clips_s']:.2f} clips/s, {r.extra['new_tokens']} tokens per clip"
        elif r.status == "ok" and r.extra.get("note"):
            note = r.extra["note"]
        if r.status == "ok" and "-emer-" in r.key:
            e = r.extra
            pad = 100 * (1 - e["tokens_per_step"] / e["row_tokens_per_step"])
            note += f"; {e['samples_per_step']} samples in {e['rows_per_step']} rows, {pad:.0f}% padding"
        elif r.status == "OOM":
            note = f"OOM at batch {r.batch}"
        elif r.status.startswith("error"):
            note = f"{r.status}: {r.extra.get('error', '')}".replace("|", "/")
        mfu = None if r.mfu is None else 100 * r.mfu
        lines.append(
            f"| {r.key} | {r.desc} | {r.batch} x {r.seq} | {fmt(r.step_s, '.3f')} | {fmt(r.samples_s, '.2f')} | "
            f"{fmt(r.tokens_s, ',.0f')} | {fmt(r.tflops, '.1f')} | {fmt(mfu, '.1f')}{'%' if mfu is not None else ''} | "
            f"{fmt(r.peak_gib, '.1f')} | {note} |"
        )
    return "\n".join(lines)


def write_report(out: Path, results: list[Result], header: dict) -> str:
    table = format_table(results, header)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.md").write_text(table + "\n")
    formula = flops.__doc__.split("Per sequence")[1].strip()
    doc = {**header, "flop_formula": formula, "rows": [asdict(r) for r in results]}
    (out / "gpu_check.json").write_text(json.dumps(doc, indent=2) + "\n")
    return table


def environment(device: torch.device, ctx: Ctx, args) -> dict:
    import transformers

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    mem = torch.cuda.get_device_properties(device).total_memory / GIB if device.type == "cuda" else None
    from importlib.metadata import PackageNotFoundError, version

    packages = {}
    for dist in ("peft", "accelerate", "deepspeed", "open_clip_torch", "openai-whisper"):
        try:
            packages[dist] = version(dist)
        except PackageNotFoundError:
            packages[dist] = None
    return {
        "device": name,
        "device_memory_gib": mem,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "packages": packages,
        "peak_tflops": ctx.peak,
        "mixed_precision": args.mixed_precision,
        "dry_run": args.dry_run,
        "budget_s": args.budget_s,
        "warmup": args.warmup,
        "steps": args.steps,
        "audio_seconds": args.audio_seconds,
    }


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", required=True, help="folder for gpu_check.md and gpu_check.json")
    p.add_argument("--dry-run", action="store_true", help="CPU, float32, tiny config and shapes: every code path")
    p.add_argument("--budget-s", type=float, default=420.0, help="rows after this many seconds are skipped")
    p.add_argument("--peak-tflops", type=float, default=None, help="peak dense bf16 TFLOP/s (default: by device name)")
    p.add_argument(
        "--mixed-precision", choices=["bf16", "no"], default=None, help="default: bf16 on CUDA, no in the dry run"
    )
    p.add_argument("--warmup", type=int, default=None, help="untimed steps per row (default 2; dry run 0)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per row (default 5; dry run 1)")
    p.add_argument("--audio-seconds", type=float, default=None, help="synthetic audio per clip (default 6; dry run 1)")
    p.add_argument("--new-tokens", type=int, default=None, help="inference: generated tokens (default 100; dry run 8)")
    p.add_argument("--infer-repeats", type=int, default=None, help="inference: timed repeats (default 3; dry run 1)")
    p.add_argument("--only", default=None, help="comma-separated row keys to run (default: all)")
    p.add_argument("--work", default=None, help="dry run: folder for the tiny weights (default: a temporary folder)")
    args = p.parse_args(argv)
    dry = args.dry_run
    defaults = {"mixed_precision": "no" if dry else "bf16", "warmup": 0 if dry else 2, "steps": 1 if dry else 5,
                "audio_seconds": 1.0 if dry else 6.0, "new_tokens": 8 if dry else 100, "infer_repeats": 1 if dry else 3}
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    args.work = args.work or tempfile.mkdtemp(prefix="gpu_check_")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.dry_run:
        device = torch.device("cpu")
    elif torch.cuda.is_available():
        device = torch.device("cuda", 0)
    else:
        print("gpu_check: no CUDA device; use --dry-run for the CPU check", file=sys.stderr)
        return 2
    rows = dry_rows() if args.dry_run else gpu_rows()
    if args.only:
        keys = args.only.split(",")
        unknown = sorted(set(keys) - {r.key for r in rows})
        if unknown:
            print(f"gpu_check: unknown row keys {unknown}; rows are {[r.key for r in rows]}", file=sys.stderr)
            return 2
        rows = [r for r in rows if r.key in keys]
    ctx = Ctx(args, device)
    header = environment(device, ctx, args)
    out = Path(args.out)
    results: list[Result] = []
    queue = list(rows)
    while queue:
        row = queue.pop(0)
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):  # libraries' prints (DeepSpeed) stay off the table
            res = run_row(row, ctx)
        res.extra["row_wall_s"] = time.perf_counter() - t0
        if row.note:
            res.extra["note"] = row.note
        results.append(res)
        if res.status == "OOM" and row.batch > 1 and row.kind != "infer":
            queue.insert(0, replace(row, key=f"{row.key}-b{row.batch // 2}", batch=row.batch // 2, fake_oom=False))
        header["elapsed_s"] = time.perf_counter() - ctx.start
        write_report(out, results, header)
        print(f"[{header['elapsed_s']:6.1f}s] {res.key}: {res.status} ({res.extra['row_wall_s']:.1f}s)",
              file=sys.stderr, flush=True)
    print(write_report(out, results, header))
    return 0


if __name__ == "__main__":
    sys.exit(main())
