"""python -m affectgpt.apps.plots results=M1.json [results=M2.json ...] out=plot.png: bar charts of saved results
(scorer results, compared by file name; a multi-checkpoint benchmark; a modality ablation; see
affectgpt/eval/plots.py). The argparse spellings still work: M1.json M2.json --out plot.png (options:
conf/plots.yaml)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from affectgpt.apps.cli import Command, UsageError, run
from affectgpt.apps.score import argparse_spellings
from affectgpt.core.errors import reading

PLOTS = Command(prog="python -m affectgpt.apps.plots", config="plots", doc=__doc__, verbatim=("results", "out"),
                repeatable=("results",))


def positional_results(argv: list[str]) -> list[str]:
    """A bare argument (no ``=``, not an option, not the value after an ``--option``) is a results file."""
    out = []
    for i, a in enumerate(argv):
        after_option = i > 0 and argv[i - 1].startswith("--") and "=" not in argv[i - 1] and \
            argv[i - 1] not in ("--help", "--cfg")
        out.append(f"results={a}" if not (after_option or "=" in a or a.startswith(("-", "~"))) else a)
    return out


def main(argv: list[str] | None = None) -> int:
    args = argparse_spellings(positional_results(list(sys.argv[1:] if argv is None else argv)),
                              {"--verbose": "verbose=true"})
    return run(PLOTS, _plot_command, args)


def _plot_command(cfg) -> int:
    from affectgpt.eval.plots import plot

    if not cfg.results:
        raise UsageError(f"no results file given (see {PLOTS.prog} --help)")
    loaded = {}
    for path in cfg.results:
        with reading(path):
            loaded[Path(path).name.removesuffix(".json").removesuffix(".metrics")] = json.loads(Path(path).read_text())
    try:
        out = plot(next(iter(loaded.values())) if len(loaded) == 1 else loaded, cfg.out)
    except (ValueError, KeyError, TypeError) as e:
        raise UsageError(f"{cfg.out}: cannot draw the plot ({e})") from None
    print(f"plot -> {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
