"""``python -m affectgpt.apps.summary model=NAME [tokens=2048] [target_tokens=512] [json=true]``:
parameter counts and a training-memory estimate of a model config, built on the ``meta`` device
(the counts and the formulas: :mod:`affectgpt.model.summary`)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

from affectgpt.apps.cli import TRAIN_VERBATIM, Command, run
from affectgpt.apps.cli import compose as compose_command
from affectgpt.model import summary

SUMMARY = Command(prog="python -m affectgpt.apps.summary", config="summary", verbatim=TRAIN_VERBATIM,
                  doc=summary.__doc__.split("\n\n")[0])


def compose(overrides: list[str]):
    """The training config (conf/train.yaml) with overrides, e.g. ``model=affectgpt-7b``."""
    return compose_command(SUMMARY, overrides)


def main(argv: list[str] | None = None) -> int:
    return run(SUMMARY, _summary_command, argv)


def _summary_command(cfg) -> int:
    rows, mem, _ = summary.summarize(cfg, int(cfg.tokens), int(cfg.target_tokens))
    name = cfg.model.get("name", "model")
    if cfg.json:
        print(json.dumps({"model": name, "modules": [asdict(r) for r in rows], "memory": mem}, indent=2))
    else:
        print(summary.format_summary(name, rows, mem))
    return 0


if __name__ == "__main__":
    sys.exit(main())
