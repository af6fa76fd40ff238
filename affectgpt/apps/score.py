"""python -m affectgpt.eval pred=P.jsonl gold=G.jsonl [wheels=DIR] [extractor=rules|llm] [task=open|basic]
[clue=auto|minilm|lexical] [out=M.json] [plot=FILE]: the label table on stdout, the metrics JSON in out.
The argparse spellings still work: --pred P --gold G --llm-cache F --verbose, and a bare --plot (beside --out).
Torch-free: the scorer, its command line and Hydra's composition import no torch (options: conf/score.yaml)."""

from __future__ import annotations

import sys
from pathlib import Path

from affectgpt.apps.cli import Command, UsageError, run

SCORE = Command(prog="python -m affectgpt.eval", config="score", doc=__doc__,
                verbatim=("pred", "gold", "wheels", "llm", "llm_cache", "out"))


def argparse_spellings(argv: list[str], bare: dict[str, str]) -> list[str]:
    """``--some-key`` → ``--some_key`` (read by cli as ``some_key=...``), ``--some-key=V`` → ``some_key=V``; a flag
    of ``bare`` with no value after it (the end, or another option next) → its ``key=value``."""
    out = []
    for i, a in enumerate(argv):
        if a.startswith("--") and "=" in a:
            key, _, value = a[2:].partition("=")
            a = f"{key.replace('-', '_')}={value}"
        elif a.startswith("--") and a not in ("--help", "--cfg"):
            a = "--" + a[2:].replace("-", "_")
            if a in bare and (i + 1 == len(argv) or argv[i + 1].startswith("-")):
                a = bare[a]
        out.append(a)
    return out


def main(argv: list[str] | None = None) -> int:
    args = argparse_spellings(list(sys.argv[1:] if argv is None else argv), {"--verbose": "verbose=true",
                                                                               "--plot": "plot="})
    return run(SCORE, _score_command, args)


def _score_command(cfg) -> int:
    from affectgpt.eval.cli import format_table, print_and_save, scoring_command
    from affectgpt.eval.parsing import read_records
    from affectgpt.eval.scorer import check_names, score

    if cfg.plot == "" and not cfg.out:
        raise UsageError("a bare --plot (plot=) goes beside out; give out=M.json or plot=FILE")

    def command() -> int:
        preds, golds = read_records(cfg.pred), read_records(cfg.gold)
        check_names([p["name"] for p in preds], [g["name"] for g in golds], cfg.pred, cfg.gold)
        result = score(preds, golds, wheels=cfg.wheels, extractor=str(cfg.extractor), task=str(cfg.task),
                       llm=cfg.llm, llm_cache=cfg.llm_cache, clue_method=str(cfg.clue))
        print_and_save(format_table(result), result, cfg.out)
        if cfg.plot is not None:
            from affectgpt.eval.plots import plot_scores

            dest = Path(cfg.plot) if cfg.plot else Path(cfg.out).with_suffix(".png")
            try:
                plot_scores({Path(cfg.pred).stem: result}, dest)
            except (OSError, ValueError) as e:
                raise UsageError(f"{dest}: cannot draw the plot ({e})") from None
            print(f"plot -> {dest}", file=sys.stderr)
        return 0

    return scoring_command(command)


if __name__ == "__main__":
    raise SystemExit(main())
