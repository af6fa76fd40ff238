"""``python -m affectgpt.apps.synthetic root=DIR [seed=0] [n_train=400] ...``: write the synthetic
EMER dataset (the generator: :mod:`affectgpt.data.synthetic`; options: conf/synthetic.yaml)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from affectgpt.apps.cli import Command, UsageError, run
from affectgpt.data import synthetic

SYNTHETIC = Command(prog="python -m affectgpt.apps.synthetic", config="synthetic",
                    doc=synthetic.__doc__.split("\n")[0], verbatim=("root",))


def main(argv: list[str] | None = None) -> int:
    return run(SYNTHETIC, _generate_command, argv)


def _generate_command(cfg) -> int:
    start = time.perf_counter()
    try:
        manifests = synthetic.ensure_dataset(Path(cfg.root), seed=int(cfg.seed), workers=cfg.workers,
                                             **{k: cfg[k] for k in synthetic.DEFAULTS})
    except ValueError as e:  # an OSError goes to the one mapping (a full disk is not bad input)
        raise UsageError(str(e)) from None
    for split, path in manifests.items():
        n = sum(1 for line in path.open(encoding="utf-8") if line.strip())
        print(f"{split}: {n} clips -> {path}")
    print(f"dataset in {cfg.root} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
