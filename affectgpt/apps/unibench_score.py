"""python -m affectgpt.apps.unibench_score gold=DIR pred=DIR [labels=given|rules|llm] [wheels=DIR] [out=M.json]
[check_sizes=false]: MER-UniBench scores per set and checkpoint, each set's best, their mean (options:
conf/unibench_score.yaml). The argparse spellings still work: --gold DIR --pred DIR --no-check-sizes --verbose.
Torch-free for labels=given and rules."""

from __future__ import annotations

import sys

from affectgpt.apps.cli import Command, run
from affectgpt.apps.score import argparse_spellings

UNIBENCH_SCORE = Command(prog="python -m affectgpt.apps.unibench_score", config="unibench_score", doc=__doc__,
                         verbatim=("gold", "pred", "wheels", "llm", "llm_cache", "out"))


def main(argv: list[str] | None = None) -> int:
    args = argparse_spellings(list(sys.argv[1:] if argv is None else argv),
                              {"--verbose": "verbose=true", "--no_check_sizes": "check_sizes=false"})
    return run(UNIBENCH_SCORE, _command, args)


def _command(cfg) -> int:
    from affectgpt.eval.cli import print_and_save, scoring_command
    from affectgpt.unibench.score import format_table, run_scorer

    def command() -> int:
        result = run_scorer(cfg.gold, cfg.pred, cfg.wheels, str(cfg.labels), cfg.llm, cfg.llm_cache,
                            check_sizes=bool(cfg.check_sizes))
        print_and_save(format_table(result), result, cfg.out, indent=1)
        return 0

    return scoring_command(command)


if __name__ == "__main__":
    raise SystemExit(main())
