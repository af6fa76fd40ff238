"""What the scoring commands print and how they end (the commands: affectgpt/apps/score.py for
``python -m affectgpt.eval``, affectgpt/apps/unibench_score.py for ``python -m affectgpt.apps.unibench_score``)."""

from __future__ import annotations

import json
from pathlib import Path

from affectgpt.core import errors
from affectgpt.core.fileio import atomic_write


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
