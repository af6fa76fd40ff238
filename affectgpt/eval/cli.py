"""``python -m affectgpt.eval --pred P --gold G [--wheels DIR] [--extractor rules|llm] \
[--task open|basic] [--out M.json]``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from affectgpt.core import errors
from affectgpt.core.fileio import atomic_write
from affectgpt.eval.parsing import read_records
from affectgpt.eval.scorer import EXTRACTORS, TASKS, check_names, score


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m affectgpt.eval", description=__doc__)
    ap.add_argument("--pred", required=True, help="predictions: JSONL or CSV (name,openset / name,reason)")
    ap.add_argument("--gold", required=True, help="gold labels: JSONL or CSV (name,openset)")
    ap.add_argument("--wheels", default=None, help="lexicon folder (official wheel files); default: built-in lexicon")
    ap.add_argument("--extractor", default="rules", choices=EXTRACTORS)
    ap.add_argument("--llm", default=None, help="local HF causal LM folder for --extractor llm")
    ap.add_argument("--llm-cache", default=None, help="JSONL cache of LLM answers (default: ~/.cache/affectgpt)")
    ap.add_argument("--clue", default="auto", choices=("auto", "minilm", "lexical"), help="clue matching method")
    ap.add_argument("--task", default="open", choices=TASKS)
    ap.add_argument("--out", default=None, help="write the metrics JSON here")
    ap.add_argument("--verbose", action="store_true", help="on an error, print the traceback too")
    ap.add_argument("--plot", nargs="?", const="", default=None, metavar="FILE",
                    help="draw the label, per-wheel and clue bars to FILE (.png/.svg/.pdf); "
                         "bare --plot: beside --out, as its .png")
    return ap


def format_table(result: dict) -> str:
    """A fixed-width table of the label metrics (percent) plus the summary lines."""
    lines = [f"lexicon: {result['lexicon']}   gold: {result['n_gold']}   pred: {result['n_pred']}   "
             f"missing: {result['missing_pred']}   extracted: {result['extraction']['from_description']}   "
             f"empty: {result['extraction']['empty']}",
             f"{'metric':<10} {'P':>7} {'R':>7} {'F1':>7} {'n':>6}"]
    for key, m in result["label"].items():
        if isinstance(m, dict):
            lines.append(
                f"{key:<10} {100 * m['precision']:7.2f} {100 * m['recall']:7.2f} {100 * m['f1']:7.2f} {m['n']:6d}"
            )
    lab = result["label"]
    lines.append(f"M-avg F1 {100 * lab['m_avg_f1']:.2f}   wheel L1 F1 {100 * lab['wheel_l1_f1']:.2f}   "
                 f"wheel L1+L2 F1 {100 * lab['wheel_l1_l2_f1']:.2f}")
    clue = result["clue"]
    if clue["method"]:
        lines.append(f"clue ({clue['method']}): P {100 * clue['precision']:.2f}  R {100 * clue['recall']:.2f}  "
                     f"F1 {100 * clue['f1']:.2f}")
    if "basic" in result:
        lines.append(f"basic hit rate {100 * result['basic']['hit_rate']:.2f}")
    return "\n".join(lines)


def print_and_save(table: str, result: dict, out: str | None, indent: int = 2) -> None:
    """The end of a scoring command: the table on stdout, then the metrics JSON written to ``out`` if given."""
    print(table)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(out) as f:
            f.write(json.dumps(result, indent=indent) + "\n")


def scoring_command(run, verbose: bool = False) -> int:
    """How a scoring command ends: ``run()``'s exit code, or one ``error:`` line (``affectgpt.core.errors``):
    2 for bad input (the scorer's ValueError/TypeError/ImportError on bad records or options count as
    bad input), 1 for a failed run. ``verbose`` (``--verbose``) adds the traceback."""
    verbose = verbose or errors.verbose()
    errors.quiet_libraries(verbose)
    try:
        return run()
    except BaseException as e:  # noqa: BLE001 -- one line for anything (SystemExit passes through)
        return errors.report(e, verbose, bad_input=(ValueError, TypeError, ImportError))


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.plot == "" and not args.out:
        print("error: a bare --plot goes beside --out; give --out M.json or --plot FILE", file=sys.stderr)
        return 2
    return scoring_command(lambda: _score_command(args), args.verbose)


def _score_command(args) -> int:
    preds = read_records(args.pred)
    golds = read_records(args.gold)
    check_names([p["name"] for p in preds], [g["name"] for g in golds], args.pred, args.gold)
    result = score(preds, golds, wheels=args.wheels, extractor=args.extractor, task=args.task,
                   llm=args.llm, llm_cache=args.llm_cache, clue_method=args.clue)
    print_and_save(format_table(result), result, args.out)
    if args.plot is not None:
        from affectgpt.eval.plots import plot_scores

        dest = Path(args.plot) if args.plot else Path(args.out).with_suffix(".png")
        try:
            plot_scores({Path(args.pred).stem: result}, dest)
        except (OSError, ValueError) as e:
            print(f"error: {dest}: cannot draw the plot ({e})", file=sys.stderr)
            return 2
        print(f"plot -> {dest}", file=sys.stderr)
    return 0
