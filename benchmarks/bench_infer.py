"""Inference speed: single-clip latency broken down, and manifest throughput, LoRA unmerged vs merged.

    python benchmarks/bench_infer.py [--checkpoint DIR] [--data DIR] [--device cpu] [--mid]

Tiny: a checkpoint (trained here for a few steps when --checkpoint is not given), exported as an
adapter bundle (base + peft LoRA, unmerged) and merged, each loaded with
``affectgpt.runtime.open.open_artifact`` as ``infer.py`` does. Mid (``--mid``):
conf/model/affectgpt-mid.yaml with random weights (no checkpoint exists offline), LoRA unmerged
vs ``merge_and_unload``. Timings: one warm-up, then the median of ``--repeat`` runs. Speed only:
an untrained model rarely stops early, so every clip generates ``--tokens`` tokens.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

FIELDS = ("decode_s", "prompt_s", "encode_s", "prefill_s", "generate_s", "tokens_per_s")


def train_tiny(work: Path) -> tuple[Path, Path]:
    out, data = work / "run", work / "syn"
    cmd = [
        sys.executable,
        "train.py",
        f"output_dir={out}",
        f"data.root={data}",
        "trainer.max_steps=4",
        "data.n_train=16",
        "data.n_val=2",
        "data.n_test=48",
        "trainer.batch_size=4",
        "trainer.standardize_samples=16",
        "trainer.num_workers=0",
        "eval.max_samples=2",
        "eval.max_new_tokens=4",
    ]
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"training the tiny checkpoint failed:\n{r.stderr[-3000:]}")
    return out / "checkpoints" / "final", data


def clip_once(model, sample, gen, system) -> dict:
    from affectgpt.runtime.inference import predict_one

    return predict_one(model, sample, "describe", gen, system, profile=True)[1]


def manifest_once(model, samples, gen, system, batch_size: int, workers: int) -> float:
    from affectgpt.runtime.inference import run_manifest

    with tempfile.TemporaryDirectory() as d:
        c = run_manifest(model, samples, Path(d) / "pred.jsonl", "describe", gen, batch_size=batch_size,
                         num_workers=workers, system=system, progress=False)
    return c["written"] / c["seconds"]


def interleaved(models: dict, sample, samples, gen, args, repeat: int, manifest_repeat: int) -> dict:
    """Median per kind, the kinds measured in turn so that a noisy neighbour hits both alike."""
    singles = {k: [] for k in models}
    rates = {k: [] for k in models}
    for _k, (model, system) in models.items():
        clip_once(model, sample, gen, system)  # warm-up
    for _ in range(repeat):
        for k, (model, system) in models.items():
            singles[k].append(clip_once(model, sample, gen, system))
    for _ in range(manifest_repeat):
        for k, (model, system) in models.items():
            rates[k].append(manifest_once(model, samples, gen, system, args.batch_size, args.workers))
    out = {}
    for k in models:
        s = {f: statistics.median(r[f] for r in singles[k]) for f in FIELDS}
        s.update(tokens=singles[k][0]["tokens"], prompt_tokens=singles[k][0]["prompt_tokens"])
        out[k] = (s, statistics.median(rates[k]))
    return out


def report(name: str, kind: str, load_s: float, s: dict, rate: float, n: int, batch: int) -> str:
    return (
        f"| {name} | {kind} | {load_s:.2f} | {1000 * s['decode_s']:.1f} | {1000 * s['encode_s']:.1f} | "
        f"{1000 * s['prefill_s']:.1f} | {s['tokens']} | {s['tokens_per_s']:.1f} | "
        f"{s['decode_s'] + s['prompt_s'] + s['encode_s'] + s['generate_s']:.3f} | "
        f"{rate:.2f} ({n} clips, batch {batch}) |"
    )


def bench_tiny(args, work: Path) -> list[str]:
    from affectgpt.data.manifest import read_manifest
    from affectgpt.runtime.export import export
    from affectgpt.runtime.open import open_artifact

    if args.checkpoint:
        ckpt, data = Path(args.checkpoint), Path(args.data)
    else:
        ckpt, data = train_tiny(work)
    samples = read_manifest(data / "test.jsonl")[: args.clips]
    gen = {"max_new_tokens": args.tokens, "do_sample": False, "temperature": 1.0, "top_p": 1.0, "num_beams": 1}
    models, load = {}, {}
    for kind in ("adapter", "merged"):
        folder = export(ckpt, work / kind, merge=kind == "merged")
        opened = open_artifact(folder, device=args.device, merge_lora=False)  # the merged export is merged already
        load[kind] = opened.seconds
        models[kind] = (opened.model, opened.loaded.system)
    res = interleaved(models, samples[0], samples, gen, args, args.repeat, 3)
    rows = []
    for kind, (s, rate) in res.items():
        rows.append(report("tiny", "LoRA unmerged" if kind == "adapter" else "merged", load[kind], s, rate,
                           len(samples), args.batch_size))
        print(rows[-1], flush=True)
    return rows


def bench_mid(args, data: Path) -> list[str]:
    """Random-weight mid model: unmerged peft LoRA, then the same model after merge_and_unload."""
    import torch
    from omegaconf import OmegaConf

    from affectgpt.data.manifest import read_manifest
    from affectgpt.model.build import build_model

    cfg = OmegaConf.load(ROOT / "conf" / "model" / "affectgpt-mid.yaml")
    # bf16 on CPU fails inside Whisper's LayerNorm ("mixed dtype (CPU)"): CPU runs use float32.
    dtype = args.mid_dtype or ("float32" if args.device == "cpu" else None)
    if dtype:
        for key in ("vision", "audio", "llm"):
            if key in cfg and cfg[key] is not None and "dtype" in cfg[key]:
                cfg[key].dtype = dtype
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = build_model(cfg, device=args.device, weights="random").eval()
    load_s = time.perf_counter() - t0
    samples = read_manifest(data / "test.jsonl")[: args.mid_clips]
    gen = {"max_new_tokens": args.mid_tokens, "do_sample": False, "temperature": 1.0, "top_p": 1.0, "num_beams": 1}
    # Unmerged and merged cannot coexist without doubling memory: measure one after the other.
    rows = []
    for kind in ("LoRA unmerged", "merged"):
        if kind == "merged":
            t0 = time.perf_counter()
            model.llm = model.llm.merge_and_unload()
            load_s = time.perf_counter() - t0  # the merge itself
        ((s, rate),) = interleaved(
            {kind: (model, None)}, samples[0], samples, gen, args, max(1, args.repeat // 2), 1
        ).values()
        rows.append(report("mid (random)", kind, load_s, s, rate, len(samples), args.batch_size))
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", help="a tiny training checkpoint (default: train one for 4 steps)")
    ap.add_argument("--data", help="its synthetic data root (with --checkpoint)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=32, help="new tokens per clip")
    ap.add_argument("--clips", type=int, default=32, help="clips in the manifest run")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--mid", action="store_true", help="also the mid config with random weights (slow on CPU)")
    ap.add_argument("--mid-tokens", type=int, default=8)
    ap.add_argument("--mid-clips", type=int, default=4)
    ap.add_argument("--mid-dtype", default=None, help="override the mid config's dtypes (default on CPU: float32)")
    args = ap.parse_args()
    if args.checkpoint and not args.data:
        ap.error("--checkpoint needs --data (the synthetic root with test.jsonl)")
    import torch

    torch.set_num_threads(args.threads)
    print(f"device {args.device}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(
        "| model | LLM | load s | decode ms | encode ms | prefill ms | tokens | tokens/s | clip total s "
        "| manifest clips/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        bench_tiny(args, work)
        if args.mid:
            bench_mid(args, Path(args.data) if args.data else work / "syn")


if __name__ == "__main__":
    main()
