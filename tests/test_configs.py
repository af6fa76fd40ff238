"""Every shipped Hydra config composes, and the documented train.py overrides (output_dir, seed, trainer.*) work."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from affectgpt.core.config import register

register()  # conf/*.yaml select their schemas (affectgpt/core/config.py) in their defaults

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


@pytest.mark.parametrize("command", sorted(p.stem for p in CONF.glob("*.yaml")))
def test_every_command_config_has_its_schema(command):
    from affectgpt.core.config import SCHEMAS

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(command)
    assert cfg._metadata.object_type is SCHEMAS[command]


def test_the_schema_refuses_a_bad_choice_and_a_bad_type_while_composing():
    from hydra.errors import ConfigCompositionException

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        with pytest.raises(ConfigCompositionException) as e:
            compose("infer", overrides=["task=nope"])
        assert "expected one of [describe, labels]" in str(e.value.__cause__)
        with pytest.raises(ConfigCompositionException) as e:
            compose("train", overrides=["trainer.max_steps=abc"])
        assert "could not be converted to Integer" in str(e.value.__cause__)
        assert compose("infer", overrides=["task=labels"]).task == "labels"


def test_infer_config_requires_a_checkpoint():
    from omegaconf.errors import MissingMandatoryValue

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("infer", overrides=["video=a.mp4"])
    with pytest.raises(MissingMandatoryValue):
        _ = cfg.checkpoint
