"""Scorer throughput: samples per second for N samples with labels given (one process, one core).

    python benchmarks/bench_scorer.py [--n 10000] [--wheels DIR] [--repeat 3]

Samples are drawn deterministically (seed 0) from the lexicon's own surface forms plus 10%
unknown words, 1-6 labels each side, half of them as list strings. The lexicon is loaded
before timing (its load time is printed apart); the first timed run starts with an empty
label cache ("cold"), later runs reuse it ("warm").
"""
from __future__ import annotations

import argparse
import json
import os
import random
import time

from affectgpt.eval import score
from affectgpt.eval.wheels import Lexicon, builtin_lexicon, load_lexicon


def make_samples(lexicon: Lexicon, n: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    rng = random.Random(seed)
    words = sorted(lexicon.forms)
    unknown = [f"unknownword{i}" for i in range(200)]

    def labels():
        out = [rng.choice(unknown) if rng.random() < 0.1 else rng.choice(words) for _ in range(rng.randint(1, 6))]
        return out if rng.random() < 0.5 else "[" + ", ".join(out) + "]"

    golds = [{"name": f"s{i:06d}", "emotions": labels()} for i in range(n)]
    preds = [{"name": f"s{i:06d}", "emotions": labels()} for i in range(n)]
    return preds, golds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--wheels", default=None)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    t0 = time.perf_counter()
    lexicon = load_lexicon(args.wheels) if args.wheels else builtin_lexicon()
    load_s = time.perf_counter() - t0
    preds, golds = make_samples(lexicon, args.n)
    lexicon._cache.clear()
    runs = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        out = score(preds, golds, wheels=lexicon)
        runs.append(time.perf_counter() - t)
    result = {
        "lexicon": lexicon.name, "n": args.n, "lexicon_load_s": round(load_s, 3),
        "cold_samples_per_s": round(args.n / runs[0]), "warm_samples_per_s": round(args.n / min(runs[1:] or runs)),
        "m_avg_f1": round(out["label"]["m_avg_f1"], 4), "cpu_count_visible": len(os.sched_getaffinity(0)),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
