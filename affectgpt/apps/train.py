"""Train AffectGPT: ``python train.py [key=value ...]`` (defaults: the tiny model on synthetic clips).

Options: conf/train.yaml and its groups (model=, data=, trainer=, experiment=). Paths are taken as
written (output_dir, data.root, trainer.resume, ...). Everything the run writes goes to output_dir,
including train.log.
"""

import logging
import logging.handlers
import os
from pathlib import Path

from omegaconf import DictConfig

from affectgpt.apps.cli import TRAIN_VERBATIM, Command, UsageError
from affectgpt.core import errors
from affectgpt.core.runlock import FolderLocked, acquire

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
TRAIN = Command(prog="python train.py", config="train", doc=__doc__, verbatim=TRAIN_VERBATIM)


def setup_logging(output_dir: Path) -> logging.handlers.MemoryHandler:
    """INFO to stderr on every rank; rank 0 also to output_dir/train.log. The libraries' records go
    to train.log only (to stderr as well with verbose=true). Returns the buffer that holds the
    stderr records of the setup: flushed when the setup succeeds, dropped when it fails, so a run
    refused at the start prints only its error line."""
    fmt = logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s")
    stream = logging.StreamHandler()
    stream.setFormatter(fmt)
    if not errors.verbose():
        stream.addFilter(lambda record: not errors.is_library_record(record))
    held = logging.handlers.MemoryHandler(capacity=10**6, flushLevel=logging.CRITICAL + 1, target=stream,
                                          flushOnClose=False)
    handlers: list[logging.Handler] = [held]
    if os.environ.get("RANK", "0") == "0":
        output_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(output_dir / "train.log", encoding="utf-8"))
        handlers[-1].setFormatter(fmt)
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True)
    return held


def make_recipe(cfg: DictConfig):
    """The recipe of ``trainer.stage``: ``sft`` (supervised, affectgpt/recipe/training.py) or ``grpo``
    (affectgpt/recipe/grpo.py)."""
    from affectgpt.recipe.grpo import GRPORecipe  # lazy: the command stays torch-free until it needs the model
    from affectgpt.recipe.training import TrainRecipe  # lazy: the command stays torch-free until it needs the model

    stage = cfg.trainer.get("stage", "sft")
    if stage not in ("sft", "grpo"):
        raise UsageError(f"trainer.stage must be sft or grpo, got {stage!r}")
    return GRPORecipe(cfg) if stage == "grpo" else TrainRecipe(cfg)


def main(cfg: DictConfig) -> None:
    from affectgpt.recipe.checkpoint import ResumeRefused  # lazy: the command stays torch-free until it needs the model

    # Absolute paths in the saved config: a checkpoint must load from any working directory.
    cfg.data.root = os.path.abspath(cfg.data.root)
    cfg.output_dir = os.path.abspath(cfg.output_dir)
    lock = None
    if os.environ.get("RANK", "0") == "0":  # one lock per run, before anything is written to output_dir
        try:
            lock = acquire(cfg.output_dir, "python train.py")
        except (FolderLocked, OSError) as e:  # held by another job; output_dir a file or not writable
            raise UsageError(str(e)) from None
    held = setup_logging(Path(cfg.output_dir))
    if lock is not None and lock.took_over:
        logging.getLogger("affectgpt.train").warning("%s", lock.describe_takeover())
    recipe = make_recipe(cfg)
    try:
        recipe.setup()
    except (FileExistsError, ResumeRefused, FolderLocked) as e:  # a folder it did not make; an inexact resume; a
        held.setTarget(None)  # feature cache another job is filling: its records stay in train.log
        raise UsageError(str(e)) from None
    except BaseException:
        held.setTarget(None)  # refused at the start: its records stay in train.log, stderr gets the error line
        raise
    held.flush()  # the setup succeeded: show what it logged, then log to stderr directly
    logging.getLogger().removeHandler(held)
    logging.getLogger().addHandler(held.target)
    metrics = recipe.train()["metrics"]
    if recipe.is_main and metrics.get("exact"):
        print(f"validation label F1 {metrics['exact']['f1']:.3f} -> {recipe.out / 'metrics.json'}")

