"""Training throughput with online frozen encoders vs the frozen-feature cache, and the cache's
extraction rate, for the tiny and the mid model on this machine's CPU.

    python benchmarks/bench_train.py                      # tiny (60 timed steps) and mid (2 timed steps)
    python benchmarks/bench_train.py --models tiny --steps 100 --out bench_train.json

Samples/s counts whole optimizer steps (data loading + forward + backward + AdamW) after warm-up
steps, read from the trainer's own step log; extraction counts decode + CLIP + Whisper + writing
the safetensors shards. The mid model is built with random weights (model.init=random): the
arithmetic, not the values, sets the speed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from anywhere without installing the package
    sys.path.insert(0, str(ROOT))

MODELS = {
    "tiny": ["model=tiny", "trainer.batch_size=8"],
    "mid": ["model=affectgpt-mid", "model.init=random", "trainer.batch_size=2"],
}


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from affectgpt.core.config import register

    register()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose("train", overrides=overrides)


def train_rate(overrides: list[str], warm: int, steps: int) -> dict:
    """Samples/s over the steps after ``warm``, from a real TrainRecipe run."""
    from affectgpt.recipe.training import TrainRecipe

    cfg = compose(overrides + [f"trainer.max_steps={warm + steps}", "trainer.warmup_steps=1", "eval.max_samples=1",
                               "eval.max_new_tokens=1"])
    recipe = TrainRecipe(cfg)
    t0 = time.perf_counter()
    recipe.setup()
    setup_s = time.perf_counter() - t0
    recipe.train()
    rows = [h for h in recipe.state["history"] if "loss" in h]
    dt = rows[-1]["wall_s"] - rows[warm - 1]["wall_s"]
    n = steps * cfg.trainer.batch_size
    return {"samples_per_s": n / dt, "step_s": dt / steps, "setup_s": setup_s, "final_loss": rows[-1]["loss"]}


def extraction_rate(overrides: list[str], cache: Path) -> dict:
    """Clips/s of ``features.extract`` over the training split into an empty cache."""
    import torch

    from affectgpt.data.splits import load_split
    from affectgpt.model.build import build_model
    from affectgpt.recipe import features as F

    cfg = compose(overrides + [f"features.cache_dir={cache}"])
    samples = load_split(cfg.data, "train")
    torch.manual_seed(cfg.seed)  # as TrainRecipe does: random (init=random) encoders must be the same ones
    model = build_model(cfg.model, device="cpu")
    model.eval()
    ident = F.encoder_identity(model, cfg.features.dtype)
    shutil.rmtree(cache, ignore_errors=True)
    F.write_identity(cache, ident)
    t0 = time.perf_counter()
    F.extract(model, samples, cache, F.split_tag(samples, cfg.data.train_manifest), ident, cfg.features.shard_size,
              cfg.features.batch_size, cfg.trainer.num_workers, progress=False)
    dt = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in cache.glob("*.safetensors"))
    del model
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return {"clips_per_s": len(samples) / dt, "clips": len(samples), "seconds": dt, "cache_mb": size / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="tiny,mid")
    ap.add_argument("--steps", type=int, default=60, help="timed steps, tiny")
    ap.add_argument("--mid-steps", type=int, default=2, help="timed steps, mid (about a minute each on 2 CPU cores)")
    ap.add_argument("--repeat", type=int, default=3, help="tiny runs per mode; the median is reported")
    ap.add_argument("--data", default=None, help="synthetic data root (default: a temporary folder)")
    ap.add_argument("--out", default=None, help="also write the results as JSON")
    args = ap.parse_args()
    import torch

    tmp = Path(tempfile.mkdtemp(prefix="bench_train-"))
    data = Path(args.data) if args.data else tmp / "syn"
    base = [f"data.root={data}", "data.n_train=96", "data.n_val=4", "data.n_test=2", "trainer.num_workers=1",
            "trainer.standardize_samples=64"]
    results = {"threads": torch.get_num_threads(), "cpus": os.cpu_count(), "load_avg": os.getloadavg()[0]}
    for name in args.models.split(","):
        steps, warm = (args.steps, 5) if name == "tiny" else (args.mid_steps, 1)
        over = base + MODELS[name]
        cache = tmp / f"features-{name}"
        row = {"extraction": extraction_rate(over, cache)}
        repeat = args.repeat if name == "tiny" else 1
        for mode, extra in (("online", ["features.cache_dir=null"]), ("cached", [f"features.cache_dir={cache}"])):
            runs = [
                train_rate(over + extra + [f"output_dir={tmp / f'{name}-{mode}-{i}'}"], warm, steps)
                for i in range(repeat)
            ]
            row[mode] = sorted(runs, key=lambda r: r["samples_per_s"])[len(runs) // 2]  # the median run
            row[mode]["all_samples_per_s"] = [round(r["samples_per_s"], 2) for r in runs]
        row["speedup"] = row["cached"]["samples_per_s"] / row["online"]["samples_per_s"]
        results[name] = row
        print(f"{name:5s} online {row['online']['samples_per_s']:8.2f} samples/s | cached "
              f"{row['cached']['samples_per_s']:8.2f} samples/s | x{row['speedup']:.2f} | extraction "
              f"{row['extraction']['clips_per_s']:.1f} clips/s ({row['extraction']['cache_mb']:.1f} MiB for "
              f"{row['extraction']['clips']} clips)", flush=True)
    print(json.dumps(results, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
