"""Train AffectGPT: ``python train.py [hydra overrides]`` (defaults: the tiny model on synthetic clips)."""

import logging
import os

import hydra
from omegaconf import DictConfig

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from affectgpt.training import TrainRecipe

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # Absolute paths in the saved config: a checkpoint must load from any working directory.
    cfg.data.root = os.path.abspath(cfg.data.root)
    cfg.output_dir = os.path.abspath(cfg.output_dir)
    recipe = TrainRecipe(cfg)
    recipe.setup()
    metrics = recipe.train()["metrics"]
    if recipe.is_main and metrics.get("exact"):
        print(f"validation label F1 {metrics['exact']['f1']:.3f} -> {recipe.out / 'metrics.json'}")


if __name__ == "__main__":
    main()
