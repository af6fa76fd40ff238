"""GRPO rollout speed: the group's shared prefill against G independent generations, and the share
of a GRPO step spent in rollouts.

    python benchmarks/bench_rl.py [--checkpoint DIR --data DIR] [--prompts 8] [--group 8] [--tokens 32]

Both rollout modes run ``affectgpt.recipe.grpo.rollout`` on the same prompts from the same seed, so they
sample the same tokens (tests/recipe/test_grpo.py checks it): "shared" prefills each prompt once and
repeats its KV cache G times, "independent" repeats the prompt G times before the prefill (what
``generate(num_return_sequences=G)`` does). Timings: one warm-up, then the median of ``--repeat``.
The step: the rollouts, the reference forward (β > 0) and the policy's forward and backward, with
the functions the recipe's ``_train_step`` calls (no optimizer step: it costs the same either way).
Without ``--checkpoint`` a tiny checkpoint is trained for a few steps first (speed only).
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def median_time(fn, repeat: int) -> tuple[float, object]:
    fn()  # warm-up
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        runs.append((time.perf_counter() - t0, out))
    runs.sort(key=lambda r: r[0])
    return statistics.median(r[0] for r in runs), runs[len(runs) // 2][1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", help="a training checkpoint folder (default: train a tiny one)")
    ap.add_argument("--data", help="the checkpoint's data root (its train.jsonl gives the prompts)")
    ap.add_argument("--prompts", type=int, default=8, help="prompts per batch (B)")
    ap.add_argument("--group", type=int, default=8, help="rollouts per prompt (G)")
    ap.add_argument("--tokens", type=int, default=32, help="max new tokens per rollout")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch

    from affectgpt.data.manifest import read_manifest
    from affectgpt.recipe.grpo import ReferenceWeights, grpo_token_loss, rollout
    from affectgpt.runtime.inference import iter_batches
    from affectgpt.runtime.open import open_artifact

    with tempfile.TemporaryDirectory() as tmp:
        if args.checkpoint:
            ckpt, data = Path(args.checkpoint), Path(args.data)
        else:
            from bench_infer import train_tiny

            ckpt, data = train_tiny(Path(tmp))
        model = open_artifact(ckpt, device="cpu", merge_lora=False).model.eval()
        samples = read_manifest(data / "train.jsonl")[: args.prompts]
        batch = next(iter_batches(model, samples, "labels", args.prompts, 0))

    def go(share: bool):
        torch.manual_seed(args.seed)
        return rollout(model, batch, args.group, args.tokens, share_prefill=share)

    result = {"prompts": args.prompts, "group": args.group, "max_new_tokens": args.tokens,
              "prompt_tokens": int(batch["attention_mask"].sum(1).float().mean()), "threads": torch.get_num_threads()}
    for name, share in (("shared", True), ("independent", False)):
        seconds, r = median_time(lambda share=share: go(share), args.repeat)
        result[name] = {"seconds": round(seconds, 4), "tokens": r["tokens"], "prefill_s": round(r["prefill_s"], 4),
                        "tokens_per_s": round(r["tokens"] / seconds, 1)}
    result["speedup"] = round(result["shared"]["tokens_per_s"] / result["independent"]["tokens_per_s"], 3)

    reference = ReferenceWeights.of(model)

    def step():
        t0 = time.perf_counter()
        r = go(True)
        t1 = time.perf_counter()
        with torch.no_grad(), reference.active(model):
            ref = model.completion_logprobs(batch, r["ids"], r["mask"]).logprobs
        out = model.completion_logprobs(batch, r["ids"], r["mask"])
        logp, keep = out.logprobs, out.completion_mask
        adv = torch.randn(keep.shape[0]).unsqueeze(1).expand_as(keep)[keep]
        loss, _, _ = grpo_token_loss(logp, r["logp"], ref, adv, 0.2, 0.04)
        (loss.sum() / keep.sum()).backward()
        model.zero_grad(set_to_none=True)
        return t1 - t0, time.perf_counter() - t0

    step()
    shares = [step() for _ in range(args.repeat)]
    result["step_s"] = round(statistics.median(s for _, s in shares), 4)
    result["rollout_share"] = round(statistics.median(r / s for r, s in shares), 3)
    print(json.dumps(result, indent=1))
    print(f"rollout tokens/s: shared prefill {result['shared']['tokens_per_s']}, G independent "
          f"{result['independent']['tokens_per_s']} -> x{result['speedup']}; rollouts are "
          f"{100 * result['rollout_share']:.0f}% of a GRPO step ({result['step_s']} s)")


if __name__ == "__main__":
    main()
