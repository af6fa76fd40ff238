"""Every real loading path on tiny checkpoints in the real formats: open_clip .pt and local-dir:,
Whisper .pt (dims + model_state_dict), an HF save_pretrained folder (model + tokenizer); strict
loading (missing / unexpected keys named), architecture checks, preprocessing, n_mels, 30-s padding."""

import json
import math

import pytest
import torch

TINY_VIT = "affectgpt-tiny-vit"


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    from affectgpt.model.tiny import ensure_tiny_assets

    root = tmp_path_factory.mktemp("enc")
    corpus = root / "train.jsonl"
    corpus.write_text(json.dumps({"name": "a", "video": "a.mp4", "subtitle": "I am fine.", "description": "She smiles.",
                                  "emotions": ["happy"]}) + "\n")
    return ensure_tiny_assets(root / "assets", seed=7, tokenizer="bpe", corpus=corpus)


def clip_state(path):
    sd = torch.load(path, map_location="cpu", weights_only=True)
    return sd.get("state_dict", sd)


# --------------------------------------------------------------------- open_clip
def test_open_clip_pt_loads_the_exact_weights(assets):
    from affectgpt.model.encoders import VisionConfig, VisionEncoder

    enc = VisionEncoder(VisionConfig(model=TINY_VIT, pretrained=str(assets / "clip.pt"), output="tokens"))
    saved = clip_state(assets / "clip.pt")
    own = enc.visual.state_dict()
    assert own.keys() == {k[len("visual."):] for k in saved if k.startswith("visual.")}
    assert all(torch.equal(own[k], saved["visual." + k]) for k in own)
    assert not any(p.requires_grad for p in enc.parameters()) and not enc.visual.training
    out = enc(torch.randint(0, 256, (2, 3, 48, 80, 3), dtype=torch.uint8))
    assert out.shape == (2, 3, 64, 64) and enc.tokens_per_frame == 64


def test_open_clip_pt_missing_key_is_named(assets, tmp_path):
    from affectgpt.model.encoders import VisionConfig, VisionEncoder

    sd = clip_state(assets / "clip.pt")
    del sd["visual.conv1.weight"]
    bad = tmp_path / "bad.pt"
    torch.save({"state_dict": sd}, bad)
    with pytest.raises(RuntimeError, match="visual.conv1.weight"):
        VisionEncoder(VisionConfig(model=TINY_VIT, pretrained=str(bad)))
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        VisionEncoder(VisionConfig(model=TINY_VIT, pretrained=str(tmp_path / "nope.pt")))


def test_open_clip_local_dir_loads_weights_and_refuses_a_folder_without_them(assets, tmp_path):
    from safetensors.torch import save_file

    from affectgpt.model.encoders import OPEN_CLIP_CONFIG_DIR, VisionConfig, VisionEncoder

    model_cfg = json.loads((OPEN_CLIP_CONFIG_DIR / f"{TINY_VIT}.json").read_text())
    folder = tmp_path / "clipdir"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg, "preprocess_cfg": {}}))
    sd = clip_state(assets / "clip.pt")
    save_file({k: v.contiguous() for k, v in sd.items()}, folder / "open_clip_model.safetensors")
    enc = VisionEncoder(VisionConfig(model=f"local-dir:{folder}", pretrained=None, output="pooled"))
    assert torch.equal(enc.visual.conv1.weight, sd["visual.conv1.weight"])
    assert enc(torch.zeros(1, 2, 64, 64, 3, dtype=torch.uint8)).shape == (1, 2, 1, 64)
    (folder / "open_clip_model.safetensors").unlink()
    with pytest.raises(RuntimeError, match="could not be loaded"):
        VisionEncoder(VisionConfig(model=f"local-dir:{folder}", pretrained=None))


def test_vision_preprocessing_matches_open_clips_own_transform(assets):
    import numpy as np
    import open_clip
    from PIL import Image

    from affectgpt.model.encoders import VisionConfig, VisionEncoder

    enc = VisionEncoder(VisionConfig(model=TINY_VIT, pretrained=str(assets / "clip.pt")))
    rng = np.random.default_rng(0)
    # smooth content: PIL's and torch's bicubic antialias kernels differ only at sharp edges
    base = rng.integers(0, 256, (6, 10, 3)).astype(np.uint8)
    frame = np.asarray(Image.fromarray(base).resize((150, 90), Image.BILINEAR))
    pp = enc.visual.preprocess_cfg
    ref = open_clip.image_transform(
        pp["size"],
        is_train=False,
        mean=pp["mean"],
        std=pp["std"],
        interpolation=pp["interpolation"],
        resize_mode=pp["resize_mode"],
    )(Image.fromarray(frame))
    ours = enc.preprocess(torch.from_numpy(frame).unsqueeze(0))[0]
    assert ours.shape == ref.shape == (3, 64, 64)
    # measured: mean 0.0044, max 0.015 (normalised units; one pixel step is ~0.015)
    assert (ours - ref).abs().mean() < 0.01 and (ours - ref).abs().max() < 0.05


# --------------------------------------------------------------------- whisper
def test_whisper_pt_loads_encoder_strictly(assets, tmp_path):
    from affectgpt.model.encoders import AudioConfig, AudioEncoder

    enc = AudioEncoder(AudioConfig(model=str(assets / "whisper.pt")))
    ckpt = torch.load(assets / "whisper.pt", map_location="cpu", weights_only=True)
    saved = {k[len("encoder."):]: v for k, v in ckpt["model_state_dict"].items() if k.startswith("encoder.")}
    own = enc.encoder.state_dict()
    assert own.keys() == saved.keys() and all(torch.equal(own[k], saved[k]) for k in own)
    assert enc.n_mels == 80 and not any(p.requires_grad for p in enc.parameters())

    ckpt["model_state_dict"]["encoder.extra.weight"] = torch.zeros(2)
    del ckpt["model_state_dict"]["encoder.ln_post.bias"]
    bad = tmp_path / "bad.pt"
    torch.save(ckpt, bad)
    with pytest.raises(RuntimeError, match=r"missing=\['ln_post.bias'\] unexpected=\['extra.weight'\]"):
        AudioEncoder(AudioConfig(model=str(bad)))
    torch.save({"weights": {}}, bad)
    with pytest.raises(ValueError, match="not a whisper checkpoint"):
        AudioEncoder(AudioConfig(model=str(bad)))


def test_whisper_dims_are_checked_against_the_architecture(assets, tmp_path):
    from affectgpt.model.encoders import AudioConfig, AudioEncoder
    from affectgpt.model.tiny import WHISPER_DIMS

    good = tmp_path / "tiny-whisper.json"
    good.write_text(json.dumps(WHISPER_DIMS))
    AudioEncoder(AudioConfig(model=str(assets / "whisper.pt"), architecture=str(good)))
    with pytest.raises(
        ValueError,
        match=r"whisper.pt does not match the architecture .*whisper-large-v3.json: n_mels: expected 128, found 80",
    ):
        AudioEncoder(AudioConfig(model=str(assets / "whisper.pt"), architecture="whisper-large-v3"))


def test_whisper_128_mels_random_from_architecture_and_padding_modes(tmp_path):
    from affectgpt.model.encoders import AudioConfig, AudioEncoder
    from affectgpt.model.tiny import WHISPER_DIMS

    arch = tmp_path / "w128.json"
    arch.write_text(json.dumps({**WHISPER_DIMS, "n_mels": 128}))
    torch.manual_seed(0)
    padded = AudioEncoder(AudioConfig(model="large-v3", architecture=str(arch), pad_to_30s=True), weights="random")
    cropped = AudioEncoder(AudioConfig(model="large-v3", architecture=str(arch), pad_to_30s=False), weights="random")
    cropped.load_state_dict(padded.state_dict())
    assert padded.encoder.conv1.in_channels == 128
    waves = [torch.randn(16000) * 0.1, torch.randn(40000) * 0.1]
    a, b = padded(waves), cropped(waves)
    assert [x.shape for x in a] == [x.shape for x in b] == [(50, 64), (125, 64)]
    # cropping changes the features (attention sees no padding): a measured option, not the same thing
    assert not torch.allclose(a[0], b[0], atol=1e-3)


def test_whisper_name_without_download_fails_fast(monkeypatch, tmp_path):
    from affectgpt.model.encoders import AudioConfig, AudioEncoder

    with pytest.raises(ValueError, match="not a local .pt and not one of"):
        AudioEncoder(AudioConfig(model="huge-v9"))
    with pytest.raises(ValueError, match="need model.audio.architecture"):
        AudioEncoder(AudioConfig(model="large-v3"), weights="random")


# --------------------------------------------------------------------- HF LLM folder + tokenizer
def test_hf_folder_model_and_tokenizer_load_and_check_architecture(assets, tmp_path):
    from affectgpt.model.llm import LLMConfig, build_base_llm
    from affectgpt.model.tokenizer import MODALITY_TOKENS, load_tokenizer

    folder = assets / "llm"
    cfg = LLMConfig(name_or_path=str(folder), dtype="float32")
    model = build_base_llm(cfg)
    from safetensors.torch import load_file

    saved = load_file(folder / "model.safetensors")
    own = model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in saved.items())
    tok = load_tokenizer(str(folder))
    assert tok.chat_template and all(t in tok.get_vocab() for t in MODALITY_TOKENS.values())

    found = json.loads((folder / "config.json").read_text())
    arch = {
        k: found[k] for k in ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
    }
    (tmp_path / "tiny-llm.json").write_text(json.dumps(arch))
    build_base_llm(LLMConfig(name_or_path=str(folder), dtype="float32", architecture=str(tmp_path / "tiny-llm.json")))
    with pytest.raises(
        ValueError,
        match=r"config.json does not match the architecture .*qwen2.5-0.5b-instruct.json: "
        r"hidden_size: expected 896, found 128",
    ):
        build_base_llm(LLMConfig(name_or_path=str(folder), dtype="float32", architecture="qwen2.5-0.5b-instruct"))


def test_hf_folder_with_a_missing_weight_is_an_error(assets, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from affectgpt.model.llm import LLMConfig, load_base_llm

    folder = tmp_path / "llm"
    shutil.copytree(assets / "llm", folder)
    sd = load_file(folder / "model.safetensors")
    del sd["model.layers.0.mlp.up_proj.weight"]
    save_file(sd, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(RuntimeError, match=r"missing=\['model.layers.0.mlp.up_proj.weight'\]"):
        load_base_llm(LLMConfig(name_or_path=str(folder), dtype="float32"))


def test_random_weights_build_the_same_shapes_without_reading_weights(assets, tmp_path):
    from affectgpt.model.llm import LLMConfig, build_base_llm

    model = build_base_llm(
        LLMConfig(name_or_path=str(assets / "llm"), dtype="bfloat16"), device="meta", weights="random"
    )
    assert (
        model.model.embed_tokens.weight.device.type == "meta"
        and model.model.embed_tokens.weight.dtype == torch.bfloat16
    )
    with pytest.raises(ValueError, match="random weights need model.llm.architecture"):
        build_base_llm(LLMConfig(name_or_path=str(tmp_path / "absent")), device="meta", weights="random")
    assert math.isclose(json.loads((assets / "llm" / "config.json").read_text())["rms_norm_eps"], 1e-6)
