"""Set-based label metrics (OV-MER's emotion-wheel precision / recall / F) and MER-UniBench's hit rate.

P and R are averaged over the samples a metric keeps; F is computed from the averaged P
and R, as in OV-MER (not a mean of per-sample F).
"""
from __future__ import annotations

from affectgpt.eval.wheels import Lexicon


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def label_metrics(lexicon: Lexicon, gold_labels: list[list[str]], pred_labels: list[list[str]]) -> dict:
    """Score aligned lists of normalised label lists; returns the issue's ``label`` block.

    An empty gold list counts as ``["neutral"]``. A sample whose gold maps to nothing under
    a metric is skipped by that metric; an empty mapped prediction scores P = R = 0.
    """
    names = lexicon.metric_names
    k = len(names)
    sum_p = [0.0] * k
    sum_r = [0.0] * k
    count = [0] * k
    groups = lexicon.groups
    for gold, pred in zip(gold_labels, pred_labels, strict=True):
        g_rows = [groups(lab) for lab in (gold or ["neutral"])]
        p_rows = [groups(lab) for lab in pred]
        for m in range(k):
            y = {row[m] for row in g_rows}
            y.discard(None)
            if not y:
                continue
            count[m] += 1
            yhat = {row[m] for row in p_rows}
            yhat.discard(None)
            if yhat:
                hit = len(y & yhat)
                sum_p[m] += hit / len(yhat)
                sum_r[m] += hit / len(y)
    out: dict = {}
    for m, name in enumerate(names):
        n = count[m]
        p = sum_p[m] / n if n else 0.0
        r = sum_r[m] / n if n else 0.0
        out[name] = {"precision": p, "recall": r, "f1": _f1(p, r), "n": n}
    n_wheels = len(lexicon.wheels)
    l1 = [out[f"M3-W{w}-L1"]["f1"] for w in range(1, n_wheels + 1)]
    l2 = [out[f"M3-W{w}-L2"]["f1"] for w in range(1, n_wheels + 1)]
    out["m_avg_f1"] = sum(out[nm]["f1"] for nm in names) / len(names)
    out["wheel_l1_f1"] = sum(l1) / len(l1) if l1 else 0.0
    out["wheel_l1_l2_f1"] = (out["wheel_l1_f1"] + (sum(l2) / len(l2) if l2 else 0.0)) / 2
    return out


def basic_hit_rate(lexicon: Lexicon, gold_labels: list[list[str]], pred_labels: list[list[str]]) -> dict:
    """MER-UniBench hit rate: per wheel at level 1, a hit when gold and prediction share a category.

    Samples whose gold maps to nothing in a wheel (e.g. ``neutral``) are skipped for that
    wheel; the result is the mean over wheels of hits / kept samples.
    """
    per_wheel = {}
    for w in range(len(lexicon.wheels)):
        col = 2 + 2 * w  # the level-1 column of wheel w in Lexicon.groups
        hits = kept = 0
        for gold, pred in zip(gold_labels, pred_labels, strict=True):
            y = {lexicon.groups(lab)[col] for lab in gold} - {None}
            if not y:
                continue
            kept += 1
            yhat = {lexicon.groups(lab)[col] for lab in pred} - {None}
            hits += bool(y & yhat)
        per_wheel[f"W{w + 1}"] = {"hit_rate": hits / kept if kept else 0.0, "n": kept}
    rates = [v["hit_rate"] for v in per_wheel.values()]
    return {"hit_rate": sum(rates) / len(rates) if rates else 0.0, "per_wheel": per_wheel}
