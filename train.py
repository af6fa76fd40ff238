"""Train AffectGPT: ``python train.py [key=value ...]`` (defaults: the tiny model on synthetic clips).

Options: conf/train.yaml and its groups (model=, data=, trainer=, experiment=). Paths are taken as
written (output_dir, data.root, trainer.resume, ...). Everything the run writes goes to output_dir,
including train.log.
"""

import logging
import os
import sys
from pathlib import Path

from omegaconf import DictConfig

from affectgpt.cli import TRAIN_VERBATIM, Command, run

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
TRAIN = Command(prog="python train.py", config="train", doc=__doc__, verbatim=TRAIN_VERBATIM)


def setup_logging(output_dir: Path) -> None:
    """INFO to stderr on every rank; rank 0 also to output_dir/train.log."""
    fmt = logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s")
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if os.environ.get("RANK", "0") == "0":
        output_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(output_dir / "train.log", encoding="utf-8"))
    for h in handlers:
        h.setFormatter(fmt)
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True)


def main(cfg: DictConfig) -> None:
    from affectgpt.training import make_recipe

    # Absolute paths in the saved config: a checkpoint must load from any working directory.
    cfg.data.root = os.path.abspath(cfg.data.root)
    cfg.output_dir = os.path.abspath(cfg.output_dir)
    setup_logging(Path(cfg.output_dir))
    recipe = make_recipe(cfg)
    recipe.setup()
    metrics = recipe.train()["metrics"]
    if recipe.is_main and metrics.get("exact"):
        print(f"validation label F1 {metrics['exact']['f1']:.3f} -> {recipe.out / 'metrics.json'}")


if __name__ == "__main__":
    sys.exit(run(TRAIN, main))
