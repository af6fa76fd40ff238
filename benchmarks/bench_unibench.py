"""MER-UniBench scoring time: 9 sets x 7 checkpoints with ``--labels rules`` on one core.

    python benchmarks/bench_unibench.py [--reference ../shared/reference] [--repeat 3] [--out R.json]

Predictions: the released AffectGPT answers (``reference/unibench/predictions/affectgpt``, 89,593
answers in 9 sets x 7 epochs). Gold: the public gold of MER2023, MELD, CMU-MOSI and CH-SIMS; for the
five sets without gold here, seeded random gold of the right kind and size stands in (the timing is
what is measured, their scores mean nothing). Pinned to one core with one thread. Reported: loading
(predictions .gz, wheels .xlsx), the first scoring run in a fresh process state ("cold": label
extraction and grouping caches empty) and the median of the later runs ("warm"), as wall time and as
this process's CPU time (the figure to trust on a shared, loaded machine; the load average is printed).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def stand_in_gold(preds: dict, gold: dict) -> dict:
    """Seeded random gold for every set that has predictions but no gold (same names, the set's kind of label)."""
    from affectgpt.unibench.score import BY_NAME

    rng = random.Random(0)
    out = dict(gold)
    for name, per in preds.items():
        if name in gold:
            continue
        bench = BY_NAME[name]
        names = list(next(iter(per.values())))
        if bench.metric == "hit_rate":
            out[name] = {n: rng.choice(bench.vocabulary) for n in names}
        elif bench.metric == "waf":
            out[name] = {n: rng.choice([-1.0, -0.4, 0.0, 0.6, 1.2]) for n in names}
        else:
            out[name] = {n: rng.sample(["happy", "sad", "angry", "worried", "calm", "surprised"], 2) for n in names}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", default=str(Path(__file__).resolve().parents[2] / "shared" / "reference"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--labels", default="rules", choices=("rules", "given"))
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    from affectgpt.eval.wheels import load_lexicon
    from affectgpt.unibench.data import find_sets
    from affectgpt.unibench.score import load_predictions, score_unibench

    ref = Path(args.reference)
    t0 = time.perf_counter()
    preds = load_predictions(ref / "unibench" / "predictions" / "affectgpt")
    t1 = time.perf_counter()
    lexicon = load_lexicon(ref / "ovmer" / "official_emotion_wheel")
    t2 = time.perf_counter()
    gold = stand_in_gold(preds, {k: v.gold for k, v in find_sets(ref / "unibench" / "gold", media=False).items()})
    answers = sum(len(rows) for per in preds.values() for rows in per.values())
    runs, cpu = [], []
    for _ in range(args.repeat):
        t, c = time.perf_counter(), time.process_time()
        result = score_unibench(gold, preds, lexicon, args.labels)
        runs.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    report = {"labels": args.labels, "sets": len(result["datasets"]),
              "checkpoints": len(next(iter(result["datasets"].values()))["per_checkpoint"]), "answers": answers,
              "load_predictions_s": t1 - t0, "load_wheels_s": t2 - t1, "score_cold_s": runs[0],
              "score_warm_s": statistics.median(runs[1:]) if len(runs) > 1 else None,
              "score_cold_cpu_s": cpu[0], "score_warm_cpu_s": statistics.median(cpu[1:]) if len(cpu) > 1 else None,
              "answers_per_cpu_s_cold": answers / cpu[0], "cpu": os.cpu_count(), "threads": 1,
              "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    print(json.dumps(report, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
