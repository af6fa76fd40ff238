"""Every shipped Hydra config composes, and the documented train.py overrides (output_dir, seed, trainer.*) work."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from affectgpt.core.config import register

register()  # conf/*.yaml select their schemas (affectgpt/core/config.py) in their defaults

CONF = Path(__file__).resolve().parents[2] / "conf"
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


def test_the_two_registries_of_clip_vit_l14_describe_one_vision_tower():
    """conf/model/affectgpt-7b.yaml names open_clip's ViT-L-14-quickgelu (open_clip's own config registry);
    affectgpt-official names clip-vit-large-patch14 (affectgpt/model/architectures, transformers' CLIPConfig
    fields). Both are OpenAI's ViT-L/14: the same widths, depth, heads, patch, image size, projection, activation."""
    import open_clip

    from affectgpt.model.architecture import load_architecture

    oc = open_clip.get_model_config("ViT-L-14-quickgelu")
    hf = load_architecture("clip-vit-large-patch14")
    v, ov = hf["vision_config"], oc["vision_cfg"]
    assert (v["hidden_size"], v["num_hidden_layers"], v["patch_size"], v["image_size"]) == (
        ov["width"], ov["layers"], ov["patch_size"], ov["image_size"])
    assert v["num_attention_heads"] == ov["width"] // ov.get("head_width", 64)
    assert v["intermediate_size"] == int(ov["width"] * ov.get("mlp_ratio", 4.0))
    assert hf["projection_dim"] == oc["embed_dim"] and oc.get("quick_gelu") and v["hidden_act"] == "quick_gelu"
