"""Every shipped Hydra config composes, and the documented train.py overrides (output_dir, seed, trainer.*) work."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

CONF = Path(__file__).resolve().parents[1] / "conf"
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))


@pytest.mark.parametrize("model", MODELS)
def test_train_config_composes_with_every_model(model):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={model}", "output_dir=/tmp/x", "seed=7", "trainer.max_steps=3",
                                          "trainer.save_every=2", "trainer.resume=auto", "data.root=/tmp/d"])
    assert cfg.seed == 7 and cfg.trainer.max_steps == 3 and cfg.trainer.save_every == 2
    assert cfg.trainer.resume == "auto" and cfg.output_dir == "/tmp/x"
    assert cfg.data.train_manifest == "/tmp/d/train.jsonl"
    assert cfg.model.llm.name_or_path


def test_infer_config_requires_a_checkpoint():
    from omegaconf.errors import MissingMandatoryValue

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("infer", overrides=["video=a.mp4"])
    with pytest.raises(MissingMandatoryValue):
        _ = cfg.checkpoint
