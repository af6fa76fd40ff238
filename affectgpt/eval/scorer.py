"""``score``: predictions + gold records -> the metrics JSON of the scorer issue."""
from __future__ import annotations

from pathlib import Path

from affectgpt.core.config import Extractor, ScoreTask, check_choice, values
from affectgpt.eval.clues import clue_overlap
from affectgpt.eval.extract import extract_emotions
from affectgpt.eval.llm import LLMExtractor
from affectgpt.eval.metrics import basic_hit_rate, label_metrics
from affectgpt.eval.parsing import parse_labels
from affectgpt.eval.wheels import Lexicon, builtin_lexicon, load_lexicon

EXTRACTORS = values(Extractor)
TASKS = values(ScoreTask)


def resolve_lexicon(wheels) -> Lexicon:
    """``None`` -> the built-in lexicon; a path -> that directory's files; a Lexicon passes through."""
    if wheels is None:
        return builtin_lexicon()
    if isinstance(wheels, Lexicon):
        return wheels
    folder = Path(wheels).resolve()
    # reloading the .xlsx files costs ~0.3 s; reuse while no file in the folder changed
    stamp = (str(folder), max((p.stat().st_mtime_ns for p in folder.iterdir()), default=0)) if folder.is_dir() else None
    if stamp is None or stamp not in _LOADED:
        lexicon = load_lexicon(Path(wheels))
        if stamp is not None:
            _LOADED.clear()
            _LOADED[stamp] = lexicon
        return lexicon
    return _LOADED[stamp]


_LOADED: dict = {}


def check_names(pred_names, gold_names, pred_where, gold_where) -> None:
    """Refuse predictions that cannot be scored against this gold: none at all, or none whose name is
    a gold name (another dataset's file, or names written differently). ValueError says which
    names were expected."""
    pred_names, gold_names = list(pred_names), list(gold_names)

    def few(names: list[str]) -> str:
        shown = ", ".join(repr(n) for n in names[:3])
        return f"{shown}{', ...' if len(names) > 3 else ''} ({len(names)} in all)"

    if not pred_names:
        raise ValueError(f"{pred_where}: no predictions; expected rows named as in {gold_where}: {few(gold_names)}")
    if not set(pred_names) & set(gold_names):
        raise ValueError(f"{pred_where}: none of its names is in {gold_where}; expected names such as "
                         f"{few(gold_names)}, found {few(pred_names)}")


def _index(records: list[dict], what: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or "name" not in rec:
            raise ValueError(f"{what} record {i}: expected a dict with a 'name', got {rec!r:.80}")
        name = str(rec["name"])
        if name in out:
            raise ValueError(f"{what} record {i}: duplicate name {name!r}")
        out[name] = rec
    return out


def _make_extractor(extractor: str, llm, llm_cache):
    if extractor == "rules":
        return lambda texts: [extract_emotions(t) for t in texts]
    if extractor == "llm":
        if not llm:
            raise ValueError("extractor 'llm' needs llm=PATH (a local Hugging Face causal LM directory)")
        return LLMExtractor(llm, cache_path=llm_cache).extract_many
    check_choice("extractor", extractor, EXTRACTORS)
    raise AssertionError(extractor)  # unreachable: the extractors are handled above


def score(
    preds: list[dict],
    golds: list[dict],
    wheels: str | Path | None = None,
    extractor: str = "rules",
    task: str = "open",
    llm: str | None = None,
    llm_cache: str | Path | None = None,
    clue_method: str = "auto",
) -> dict:
    """Score prediction records against gold records; returns the scorer issue's JSON dict.

    A prediction without ``emotions`` gets them from its ``description`` via ``extractor``.
    A gold name without a prediction scores as an empty prediction (``missing_pred``);
    predictions for names not in gold are ignored. ``task="basic"`` adds a ``basic`` block
    with MER-UniBench's hit rate. Fractions are in 0..1.
    """
    check_choice("task", task, TASKS)
    check_choice("extractor", extractor, EXTRACTORS)
    lexicon = resolve_lexicon(wheels)
    gold_by_name = _index(golds, "gold")
    pred_by_name = _index(preds, "prediction")
    names = list(gold_by_name)

    gold_labels = []
    for name in names:
        g = gold_by_name[name]
        if "emotions" not in g or g["emotions"] is None:
            raise ValueError(f"gold record {name!r} has no 'emotions'")
        gold_labels.append(parse_labels(g["emotions"]))

    pred_labels: list[list[str] | None] = []
    to_extract: list[int] = []
    missing = 0
    for name in names:
        p = pred_by_name.get(name)
        if p is None:
            missing += 1
            pred_labels.append([])
        elif p.get("emotions") is not None:
            pred_labels.append(parse_labels(p["emotions"]))
        elif p.get("description"):
            to_extract.append(len(pred_labels))
            pred_labels.append(None)
        else:
            pred_labels.append([])
    if to_extract:
        run = _make_extractor(extractor, llm, llm_cache)
        texts = [pred_by_name[names[i]]["description"] for i in to_extract]
        for i, labels in zip(to_extract, run(texts), strict=True):
            pred_labels[i] = parse_labels(labels)

    result = {
        "lexicon": lexicon.name,
        "n_gold": len(golds),
        "n_pred": len(preds),
        "missing_pred": missing,
        "label": label_metrics(lexicon, gold_labels, pred_labels),
        "clue": _clue_block(names, gold_by_name, pred_by_name, clue_method),
        "extraction": {
            "from_description": len(to_extract),
            "empty": sum(1 for n, labels in zip(names, pred_labels, strict=False) if n in pred_by_name and not labels),
        },
    }
    if task == "basic":
        result["basic"] = basic_hit_rate(lexicon, gold_labels, pred_labels)
    return result


def _clue_block(names, gold_by_name, pred_by_name, method: str) -> dict:
    pairs = [
        (gold_by_name[n]["description"], pred_by_name[n]["description"])
        for n in names
        if gold_by_name[n].get("description") and n in pred_by_name and pred_by_name[n].get("description")
    ]
    if not pairs:
        return {"precision": None, "recall": None, "f1": None, "method": None}
    return clue_overlap([g for g, _ in pairs], [p for _, p in pairs], method=method)
