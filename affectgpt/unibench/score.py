"""MER-UniBench scoring: nine test sets, three metrics, per-checkpoint scores and the per-set best.

``score_unibench(gold, preds, lexicon, labels)`` follows the authors' ``evaluation.py`` (see the
README's MER-UniBench section): hit rate on MER2023/MER2024/MELD/IEMOCAP (level 1 of every wheel,
a wheel skips samples whose gold maps nowhere, the mean of the wheel scores), weighted F1 on the
binarised non-zero gold valence of CMU-MOSI/MOSEI/CH-SIMS/v2 (predicted neutral or unknown
counts as not positive), and the level-1 emotion-wheel F of OV-MERD+. Labels come from the
official pipeline's extractions (``given``), the built-in rules (``rules``) or a local LLM
(``llm``). Torch-free; ``llm`` imports torch lazily.

    python -m affectgpt.apps.unibench_score gold=DIR pred=DIR|FILE [wheels=DIR] [labels=given|rules|llm]
"""
from __future__ import annotations

import re
from pathlib import Path

from affectgpt.core.config import LabelMode, check_choice, values
from affectgpt.core.fileio import iter_jsonl
from affectgpt.eval.extract import extract_emotions
from affectgpt.eval.metrics import label_metrics
from affectgpt.eval.parsing import normalize_label, parse_labels
from affectgpt.eval.scorer import check_names, resolve_lexicon
from affectgpt.eval.valence import sentiment_of
from affectgpt.eval.wheels import Lexicon
from affectgpt.unibench.data import find_sets
from affectgpt.unibench.llm import UniBenchLLM
from affectgpt.unibench.sets import BY_NAME, IEMOCAP_LABELS, MELD_LABELS, MER_LABELS, SETS, BenchSet  # noqa: F401

LABEL_MODES = values(LabelMode)


SENTIMENT_VALUE = {"positive": 1, "negative": -1, "neutral": 0}  # any other word counts 0, as upstream


# ----------------------------------------------------------------------------- predictions
def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    for i, row in iter_jsonl(path):
        if not isinstance(row.get("name"), str):
            raise ValueError(f"{path}:{i}: expected a JSON object with a string 'name', found "
                             f"{type(row.get('name')).__name__ if 'name' in row else 'no name'}")
        per = row["epochs"].values() if isinstance(row.get("epochs"), dict) else [row]
        for fields in per:
            openset = fields.get("openset") if isinstance(fields, dict) else None
            if openset is not None and not (isinstance(openset, str) or (
                    isinstance(openset, list) and all(isinstance(v, str) for v in openset))):
                raise ValueError(f"{path}:{i}: 'openset' must be a list of strings or a list string, "
                                 f"found {type(openset).__name__}")
        rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no predictions (empty file)")
    return rows


def _set_files(folder: Path) -> dict[str, Path]:
    """``<set>.jsonl`` / ``<set>.jsonl.gz`` files of a folder, by set name (unknown names are ignored)."""
    found = {}
    for p in sorted(folder.iterdir()):
        m = re.fullmatch(r"([a-z0-9]+)\.jsonl(\.gz)?", p.name)
        if m and m.group(1) in BY_NAME:
            if m.group(1) in found:
                raise ValueError(f"{folder}: both {found[m.group(1)].name} and {p.name} hold set {m.group(1)!r}")
            found[m.group(1)] = p
    return found


def _rows_by_checkpoint(rows: list[dict], path: Path, default: str) -> dict[str, dict[str, dict]]:
    """``{"name", "epochs": {ckpt: {...}}}`` rows or plain rows (one checkpoint named ``default``)."""
    out: dict[str, dict[str, dict]] = {}
    for i, row in enumerate(rows, 1):
        per = row["epochs"] if "epochs" in row else {default: row}
        if not isinstance(per, dict):
            raise ValueError(f"{path}: row {i} ({row['name']}): 'epochs' must be an object")
        for ckpt, fields in per.items():
            bucket = out.setdefault(str(ckpt), {})
            if row["name"] in bucket:
                raise ValueError(f"{path}: duplicate name {row['name']!r} for checkpoint {ckpt!r}")
            bucket[row["name"]] = fields
    return out


def load_predictions(path) -> dict[str, dict[str, dict[str, dict]]]:
    """set -> checkpoint -> name -> ``{"reason"?, "openset"?, "sentiment"?, "error"?}``.

    ``path`` is one ``<set>.jsonl[.gz]`` file, a folder of them (plain rows: one checkpoint named
    after the folder; or rows with ``epochs``), or a benchmark-runner folder
    (``predictions/<checkpoint>/<set>.jsonl``, one sub-folder per checkpoint).
    """
    path = Path(path)
    if path.is_file():
        m = re.fullmatch(r"([a-z0-9]+)\.jsonl(\.gz)?", path.name)
        if not m or m.group(1) not in BY_NAME:
            raise ValueError(f"{path}: a prediction file must be named <set>.jsonl[.gz], set one of {list(BY_NAME)}")
        return {m.group(1): _rows_by_checkpoint(_read_jsonl(path), path, path.parent.name)}
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such prediction file or folder")
    if (path / "predictions").is_dir():
        path = path / "predictions"
    out: dict[str, dict[str, dict[str, dict]]] = {}
    files = _set_files(path)
    for name, p in files.items():
        out[name] = _rows_by_checkpoint(_read_jsonl(p), p, path.name)
    if not files:  # runner layout: one folder per checkpoint
        for sub in sorted(q for q in path.iterdir() if q.is_dir()):
            for name, p in _set_files(sub).items():
                for ckpt, rows in _rows_by_checkpoint(_read_jsonl(p), p, sub.name).items():
                    out.setdefault(name, {})[ckpt] = rows
    if not out:
        raise ValueError(f"{path}: no <set>.jsonl[.gz] prediction files (sets: {', '.join(BY_NAME)})")
    return out


# ----------------------------------------------------------------------------- metrics
def hit_rate(lexicon: Lexicon, gold: list[str], pred: list[list[str]], vocabulary: tuple[str, ...]) -> dict:
    """Per wheel at level 1: skip a sample whose gold maps nowhere, hit = gold and prediction share a group.

    ``mscore`` (computed upstream, not reported) divides a hit by the number of predicted groups
    that some vocabulary word maps to (0 when there is none).
    """
    wheels = []
    for w in range(len(lexicon.wheels)):
        col = 2 + 2 * w  # level-1 column of wheel w in Lexicon.groups
        vocab = {lexicon.groups(normalize_label(v))[col] for v in vocabulary} - {None}
        hits = mscore = kept = 0
        for g, labels in zip(gold, pred, strict=True):
            y = {lexicon.groups(normalize_label(g))[col]} - {None}
            if not y:
                continue
            kept += 1
            yhat = {lexicon.groups(lab)[col] for lab in labels} - {None}
            hit = len(y & yhat)
            hits += hit
            mscore += hit / len(yhat & vocab) if yhat & vocab else 0.0
        wheels.append({"hit": hits / kept if kept else 0.0, "mscore": mscore / kept if kept else 0.0, "kept": kept})
    n = len(wheels)
    return {"score": sum(x["hit"] for x in wheels) / n, "mscore": sum(x["mscore"] for x in wheels) / n,
            "per_wheel": wheels}


def weighted_f1(y: list[bool], yhat: list[bool]) -> float:
    """scikit-learn's ``f1_score(y, yhat, average="weighted")``: per-class F1 weighted by true support."""
    total = 0.0
    for c in sorted(set(y) | set(yhat)):
        tp = sum(1 for a, b in zip(y, yhat, strict=False) if a == c and b == c)
        n_pred, n_true = sum(1 for b in yhat if b == c), sum(1 for a in y if a == c)
        p = tp / n_pred if n_pred else 0.0
        r = tp / n_true if n_true else 0.0
        total += n_true * (2 * p * r / (p + r) if p + r else 0.0)
    return total / len(y) if y else 0.0


def sentiment_scores(gold: list[float], sentiments: list[str | None]) -> dict:
    """WAF and accuracy on the samples with non-zero gold: y = gold > 0, prediction = word maps to > 0."""
    y, yhat, unmapped = [], [], 0
    for g, word in zip(gold, sentiments, strict=True):
        word = normalize_label(word or "")
        unmapped += word not in SENTIMENT_VALUE
        if g == 0:
            continue
        y.append(g > 0)
        yhat.append(SENTIMENT_VALUE.get(word, 0) > 0)
    acc = sum(a == b for a, b in zip(y, yhat, strict=True)) / len(y) if y else 0.0
    return {"score": weighted_f1(y, yhat), "accuracy": acc, "kept": len(y), "unmapped_sentiments": unmapped}


def ew_f1(lexicon: Lexicon, gold: list[list[str]], pred: list[list[str]]) -> dict:
    """Level-1 emotion-wheel F of OV-MERD+: per wheel F from sample-averaged P and R, then the mean over wheels."""
    m = label_metrics(lexicon, gold, pred)
    keys = [f"M3-W{k}-L1" for k in range(1, len(lexicon.wheels) + 1)]
    per = [{"f1": m[k]["f1"], "precision": m[k]["precision"], "recall": m[k]["recall"], "kept": m[k]["n"]}
           for k in keys]
    mean = {x: sum(w[x] for w in per) / len(per) for x in ("f1", "precision", "recall")}
    return {"score": mean["f1"], "precision": mean["precision"], "recall": mean["recall"], "per_wheel": per}


# ----------------------------------------------------------------------------- labels
def _texts(rows: dict[str, dict], names: list[str], key: str, where: str) -> list[str | None]:
    out = []
    for n in names:
        row = rows.get(n)
        if row is None or row.get("error"):
            out.append(None)
        elif key not in row:
            raise ValueError(f"{where}: sample {n!r} has no {key!r} (keys: {sorted(row)})")
        else:
            out.append(row[key])
    return out


def labels_and_sentiments(bench: BenchSet, rows: dict[str, dict], names: list[str], mode: str, where: str,
                          llm=None) -> tuple[list[list[str]], list[str | None]]:
    """Label lists (and, for sentiment sets, sentiment words) of the named samples, in order.

    A missing or error row gives no labels and no sentiment (it scores as a wrong answer).
    """
    need_sentiment = bench.metric == "waf"
    if mode == "given":
        opensets = _texts(rows, names, "openset", where)
        labels = [parse_labels(o) for o in opensets]
        sentiments = _texts(rows, names, "sentiment", where) if need_sentiment else [None] * len(names)
        return labels, sentiments
    reasons = _texts(rows, names, "reason", where)
    if mode == "rules":
        labels = [parse_labels(extract_emotions(r)) if r else [] for r in reasons]
        sentiments = (
            [sentiment_of(lab) if r else None for lab, r in zip(labels, reasons, strict=True)]
            if need_sentiment
            else [None] * len(names)
        )
        return labels, sentiments
    if mode == "llm":
        if llm is None:
            raise ValueError("--labels llm needs --llm PATH (a local Hugging Face causal LM folder)")
        labels = [parse_labels(x) for x in llm.extract([r or "" for r in reasons])]
        labels = [lab if r else [] for lab, r in zip(labels, reasons, strict=False)]
        sentiments = llm.sentiments(labels) if need_sentiment else [None] * len(names)
        return labels, [s if r else None for s, r in zip(sentiments, reasons, strict=False)]
    check_choice("labels mode", mode, LABEL_MODES)
    raise AssertionError(mode)  # unreachable: the modes are handled above


def agreement(rows: dict[str, dict], names: list[str], labels: list[list[str]], sentiments: list) -> dict:
    """Share of samples whose label set (and sentiment word) equals the row's ``openset`` (``sentiment``)."""
    same_labels = same_sent = n_labels = n_sent = 0
    for n, lab, sent in zip(names, labels, sentiments, strict=False):
        row = rows.get(n) or {}
        if row.get("openset") is not None:
            n_labels += 1
            same_labels += set(lab) == set(parse_labels(row["openset"]))
        if row.get("sentiment") is not None and sent is not None:
            n_sent += 1
            same_sent += normalize_label(sent) == normalize_label(row["sentiment"])
    return {"labels": same_labels / n_labels if n_labels else None, "n_labels": n_labels,
            "sentiment": same_sent / n_sent if n_sent else None, "n_sentiment": n_sent}


def _ckpt_order(names):
    return sorted(names, key=lambda c: (0, float(c), c) if re.fullmatch(r"\d+(\.\d+)?", c) else (1, 0.0, c))


def score_set(bench: BenchSet, gold: dict, preds: dict[str, dict[str, dict]], lexicon: Lexicon, mode: str,
              llm=None) -> dict:
    """Every checkpoint's score on one set and the best one (first on ties, as ``np.argmax``)."""
    names = list(gold)
    per = {}
    for ckpt in _ckpt_order(preds):
        rows = preds[ckpt]
        where = f"{bench.name} checkpoint {ckpt}"
        labels, sentiments = labels_and_sentiments(bench, rows, names, mode, where, llm)
        if bench.metric == "hit_rate":
            res = hit_rate(lexicon, [gold[n] for n in names], labels, bench.vocabulary)
        elif bench.metric == "waf":
            res = sentiment_scores([gold[n] for n in names], sentiments)
        else:
            res = ew_f1(lexicon, [gold[n] for n in names], labels)
        res["missing"] = sum(1 for n in names if n not in rows)
        res["errors"] = sum(1 for n in names if n in rows and rows[n].get("error"))
        res["empty_labels"] = sum(1 for lab in labels if not lab)
        if mode != "given":
            res["agreement_with_given"] = agreement(rows, names, labels, sentiments)
        per[ckpt] = res
    best = max(per, key=lambda c: per[c]["score"]) if per else None  # max keeps the first maximum
    return {"metric": bench.metric, "n": len(names), "per_checkpoint": per,
            "best": {"checkpoint": best, "score": per[best]["score"] if best else None}}


def score_unibench(gold: dict[str, dict], preds: dict, lexicon: Lexicon, labels: str = "given", llm=None) -> dict:
    """The output JSON: per set the per-checkpoint scores and the best; ``mean_best`` = mean of the bests."""
    check_choice("labels mode", labels, LABEL_MODES)
    datasets = {}
    for bench in SETS:
        if bench.name in gold and bench.name in preds:
            datasets[bench.name] = score_set(bench, gold[bench.name], preds[bench.name], lexicon, labels, llm)
    bests = [d["best"]["score"] for d in datasets.values() if d["best"]["score"] is not None]
    return {"datasets": datasets, "mean_best": sum(bests) / len(bests) if bests else None, "labels": labels,
            "lexicon": lexicon.name,
            "missing_gold": [s.name for s in SETS if s.name in preds and s.name not in gold],
            "missing_predictions": [s.name for s in SETS if s.name in gold and s.name not in preds]}


# ----------------------------------------------------------------------------- table and command line
def format_table(result: dict) -> str:
    """Percent scores in the paper's column order, the mean last: one row per checkpoint, then the per-set best."""
    present = [s for s in SETS if s.name in result["datasets"]]
    if not present:
        return "no set has both gold and predictions"
    ds = result["datasets"]
    head = f"{'checkpoint':<14}" + "".join(f"{s.title:>11}" for s in present) + f"{'Mean':>9}"
    metric = f"{'':<14}" + "".join(f"{s.metric:>11}" for s in present)
    ckpts = _ckpt_order({c for s in present for c in ds[s.name]["per_checkpoint"]})
    lines = [f"MER-UniBench (labels: {result['labels']}, wheels: {result['lexicon']})", head, metric]
    for c in ckpts:
        vals = [ds[s.name]["per_checkpoint"].get(c, {}).get("score") for s in present]
        cells = "".join(f"{100 * v:11.2f}" if v is not None else f"{'-':>11}" for v in vals)
        got = [v for v in vals if v is not None]
        lines.append(f"{c:<14}{cells}{100 * sum(got) / len(got):9.2f}")
    if len(ckpts) > 1:
        best = "".join(f"{100 * ds[s.name]['best']['score']:11.2f}" for s in present)
        lines.append(f"{'best':<14}{best}{100 * result['mean_best']:9.2f}")
        lines.append(f"{'  epoch':<14}" + "".join(f"{ds[s.name]['best']['checkpoint']:>11}" for s in present))
        lines.append("note: the best row picks each set's best checkpoint on its test data, as the paper does.")
    lines.append(f"{'paper (A+V+T)':<14}" + "".join(f"{s.paper:11.2f}" for s in present))
    for key, what in (("missing_gold", "predictions without gold (not scored)"),
                      ("missing_predictions", "gold without predictions")):
        if result.get(key):
            lines.append(f"{what}: {', '.join(result[key])}")
    return "\n".join(lines)


def run_scorer(gold_dir, pred, wheels=None, labels: str = "given", llm: str | None = None,
               llm_cache=None, check_sizes: bool = True) -> dict:
    """Load gold and predictions from disk and score them (what the command line and the runner call)."""
    gold = {name: t.gold for name, t in find_sets(gold_dir, check_sizes=check_sizes, media=False).items()}
    preds = load_predictions(pred)
    model = None
    if labels == "llm":
        if not llm:
            raise ValueError("--labels llm needs --llm PATH (a local Hugging Face causal LM folder)")
        model = UniBenchLLM(llm, cache_path=llm_cache)
    for name in set(gold) & set(preds):  # a set whose predictions name none of its samples is another set's
        for ckpt, rows in preds[name].items():
            check_names(rows, gold[name], f"{pred} ({name}, checkpoint {ckpt})", f"{gold_dir} ({name})")
    result = score_unibench(gold, preds, resolve_lexicon(wheels), labels, model)
    for name in result["missing_gold"]:  # still show that the answers parse and extract
        result.setdefault("extraction_only", {})[name] = extraction_summary(BY_NAME[name], preds[name], labels, model)
    return result


def extraction_summary(bench: BenchSet, per_ckpt: dict[str, dict], labels: str, llm=None) -> dict:
    """Per checkpoint: answers, error rows, and how many got no labels, for a set without gold."""
    out = {}
    for ckpt in _ckpt_order(per_ckpt):
        rows = per_ckpt[ckpt]
        names = list(rows)
        got, _ = labels_and_sentiments(bench, rows, names, labels, f"{bench.name} checkpoint {ckpt}", llm)
        out[ckpt] = {"n": len(names), "errors": sum(1 for n in names if rows[n].get("error")),
                     "empty_labels": sum(1 for lab in got if not lab)}
    return out
