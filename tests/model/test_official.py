"""The released AffectGPT: its 412-tensor layout, the converter, and the forward math of its modality tokens.

The fixture (scripts/make_official_fixture.py) writes a tiny official-format ``.pth`` and tiny
transformers CLIP / HuBERT / Qwen2 folders; the official formulas are computed here from the raw
tensors of that file, independently of the converted model. infer.py and train.py on the converted checkpoint run
in this process (``run_in_process``: same argv, exit code, stdout, stderr); their processes are test_end_to_end's."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import ROOT, run_in_process

spec = importlib.util.spec_from_file_location("make_official_fixture", ROOT / "scripts" / "make_official_fixture.py")
fixture_mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fixture_mod)
TINY, PTH = fixture_mod.TINY, fixture_mod.PTH


def convert_args(fx: Path, output: Path, official: Path | None = None, *extra: str) -> list[str]:
    return [f"official={official or fx / PTH}", f"output={output}",
            f"model.vision.model={fx / 'clip-vit-large-patch14'}",
            f"model.audio.model={fx / 'chinese-hubert-large'}", f"model.llm.name_or_path={fx / 'Qwen2.5-7B-Instruct'}",
            "model.llm.architecture=null", f"model.fusion_dim={TINY.fusion}", *extra]


@pytest.fixture(scope="module")
def fx(tmp_path_factory) -> Path:
    return fixture_mod.make_fixture(tmp_path_factory.mktemp("official") / "fx")


@pytest.fixture(scope="module")
def converted(fx) -> Path:
    from affectgpt.apps.convert import main

    out = fx / "converted" / "affectgpt-official"
    assert main(convert_args(fx, out)) == 0
    return out


@pytest.fixture(scope="module")
def raw(fx) -> dict:
    return torch.load(fx / PTH, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def loaded(converted):
    from affectgpt.model.affectgpt import AffectGPT

    return AffectGPT.from_pretrained(converted, device="cpu")


# ----------------------------------------------------------------------------- layout at 7B
def test_released_layout_at_7b_shapes_on_meta():
    """model=affectgpt-official built with no weights: its trainable tensors are exactly the released
    file's 412 minus image_llama_proj, renamed, at the released shapes; 57,168,644 parameters."""
    from affectgpt.apps.cli import _compose
    from affectgpt.model import official
    from affectgpt.model.build import build_model

    model = build_model(_compose("train", ["model=affectgpt-official"]).model, device="meta", weights="random")
    dims = official.dims_of(model)
    assert dims == official.OfficialDims()
    layout = official.official_spec(dims)
    assert len(layout) == 412 and sum(math.prod(s) for s in layout.values()) == official.PARAMETERS_7B
    lora = {k: s for k, s in layout.items() if ".lora_" in k}
    assert len(lora) == 392 and sum(math.prod(s) for s in lora.values()) == 40_370_176
    assert layout["llama_model.base_model.model.model.layers.27.mlp.down_proj.lora_A.default.weight"] == (16, 18944)
    assert layout["llama_model.base_model.model.model.layers.0.self_attn.k_proj.lora_B.default.weight"] == (512, 16)
    assert layout["attention_mlp.weight"] == (1024, 2048) and layout["fc_att.weight"] == (2, 1024)
    ours = {official.our_name(k): s for k, s in layout.items() if official.our_name(k) is not None}
    mine = {k: tuple(v.shape) for k, v in model.trainable_state_dict().items()}
    assert ours == mine
    assert [k for k in layout if official.our_name(k) is None] == ["image_llama_proj.weight", "image_llama_proj.bias"]
    assert model.token_ids == {"video": (151667, 151668), "audio": (151666,), "fusion": (151669,)}


# ----------------------------------------------------------------------------- converter
def test_every_tensor_lands_on_the_module_the_notes_name(loaded, raw):
    """Tensor by tensor: LoRA on llm.base_model.model.model.layers.{i}.{mod}.lora_{A,B}['default'], the
    adapters on the modules of docs/official-checkpoints.md."""
    state = raw["model"]
    lora_modules = [k for k in state if ".lora_" in k]
    assert len(lora_modules) == TINY.llm_layers * 14
    for key in lora_modules:
        path, ab = key.removeprefix("llama_model.").split(".lora_")
        module = loaded.llm.get_submodule(path)
        weight = getattr(module, f"lora_{ab[0]}")["default"].weight
        assert torch.equal(weight, state[key]), key
    named = {"video_attention_mlp": loaded.video_adapter.pool.score, "affectgpt_proj": loaded.video_adapter.proj,
             "audio_attention_mlp": loaded.audio_adapter.pool.score, "audio_llama_proj": loaded.audio_adapter.proj,
             "multi_audio_embs": loaded.fusion.audio, "multi_video_embs": loaded.fusion.video,
             "attention_mlp": loaded.fusion.weight[0], "fc_att": loaded.fusion.weight[1],
             "multi_llama_proj": loaded.fusion.proj}
    for name, module in named.items():
        assert torch.equal(module.weight, state[f"{name}.weight"]) and torch.equal(module.bias, state[f"{name}.bias"])
    assert loaded.video_adapter.frame_position is None and loaded.added_rows is None


def _official_tokens(fx: Path, state: dict, frames: torch.Tensor, wave: torch.Tensor) -> dict[str, torch.Tensor]:
    """The released forward pass, written out from the notes (§2, §3.1) on the raw tensors."""
    from transformers import CLIPModel, HubertModel

    clip = CLIPModel.from_pretrained(fx / "clip-vit-large-patch14").eval()
    hubert = HubertModel.from_pretrained(fx / "chinese-hubert-large").eval()
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    pixels = (frames.permute(0, 3, 1, 2).float() / 255.0 - mean) / std
    with torch.no_grad():
        out = clip.get_image_features(pixel_values=pixels)
        video = (out if isinstance(out, torch.Tensor) else out.pooler_output)  # [8, V]
        starts = [int(k * (len(wave) / 16000 - 2) / 7 * 16000) for k in range(8)]
        clips = torch.stack([wave[s : s + 32000] for s in starts]).double()
        clips = ((clips - clips.mean()) / torch.sqrt(clips.var(unbiased=False) + 1e-7)).float()
        hidden = hubert(clips, output_hidden_states=True).hidden_states
        audio = torch.stack(hidden[-4:]).mean(0).mean(1)  # [8, A]

    def lin(name, x):
        return x @ state[f"{name}.weight"].T + state[f"{name}.bias"]

    def pool(name, x):  # raw scores, weighted sum, no softmax
        return (lin(name, x) * x).sum(0)

    v, a = lin("multi_video_embs", video.mean(0)), lin("multi_audio_embs", audio.mean(0))
    alpha = lin("fc_att", lin("attention_mlp", torch.cat([v, a])))
    return {"video": lin("affectgpt_proj", pool("video_attention_mlp", video)),
            "audio": lin("audio_llama_proj", pool("audio_attention_mlp", audio)),
            "fusion": lin("multi_llama_proj", alpha[0] * v + alpha[1] * a), "video_feats": video, "audio_feats": audio}


def test_modality_tokens_equal_the_official_formulas(fx, loaded, raw):
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (8, 224, 224, 3), dtype=torch.uint8, generator=g)
    wave = torch.randn(5 * 16000 + 123, generator=g) * 0.3 + 0.05
    expected = _official_tokens(fx, raw["model"], frames, wave)
    batch = {"frames": frames.unsqueeze(0), "audio": [wave], "video_present": torch.tensor([True]),
             "input_ids": torch.zeros(1, 1, dtype=torch.long)}
    with torch.no_grad():
        feats = loaded.encode_media(batch)
        rows = loaded.modality_embeddings(batch, feats)
    torch.testing.assert_close(feats["video"][0, :, 0], expected["video_feats"], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(feats["audio"][0], expected["audio_feats"], rtol=1e-6, atol=1e-6)
    for key in ("video", "audio", "fusion"):
        assert rows[key][0].shape == (1, TINY.llm_hidden)
        torch.testing.assert_close(rows[key][0][0], expected[key], rtol=1e-6, atol=1e-6, msg=key)


@pytest.mark.integration
def test_infer_prints_json_from_the_converted_checkpoint(fx, converted):
    r = run_in_process(["infer.py", f"checkpoint={converted}", f"video={fx / 'clip.mp4'}",
                        "subtitle=I can't believe it.", "decoding=official", "max_new_tokens=4"])
    assert r.returncode == 0, r.stderr[-2000:]
    row = json.loads(r.stdout.strip().splitlines()[-1])
    assert row["name"] == "clip" and row["task"] == "describe" and isinstance(row["description"], str)


# ----------------------------------------------------------------------------- refusals
def _convert_error(fx: Path, tmp_path: Path, obj, capsys) -> str:
    from affectgpt.apps.convert import main

    bad = tmp_path / "bad.pth"
    torch.save(obj, bad)
    assert main(convert_args(fx, tmp_path / "out", bad)) == 2
    assert not (tmp_path / "out").exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {bad}")
    return err[0]


def test_refuses_a_missing_key(fx, raw, tmp_path, capsys):
    state = dict(raw["model"])
    del state["fc_att.bias"]
    err = _convert_error(fx, tmp_path, {**raw, "model": state}, capsys)
    assert "1 missing: fc_att.bias" in err and "unexpected" not in err and "mis-shaped" not in err


def test_refuses_a_wrong_shape(fx, raw, tmp_path, capsys):
    key = "llama_model.base_model.model.model.layers.1.mlp.down_proj.lora_A.default.weight"
    state = {**raw["model"], key: torch.zeros(16, TINY.llm_hidden)}
    err = _convert_error(fx, tmp_path, {**raw, "model": state}, capsys)
    assert f"1 mis-shaped: {key} [16, {TINY.llm_hidden}] (expected [16, {TINY.llm_intermediate}])" in err


def test_refuses_a_pickle_payload(fx, raw, tmp_path, capsys):
    from argparse import Namespace  # any class object: weights_only refuses to construct it

    err = _convert_error(fx, tmp_path, {**raw, "config": Namespace(init_lr=1e-5)}, capsys)
    assert "refused, it holds pickled objects" in err


# ----------------------------------------------------------------------------- HuBERT preprocessing
@pytest.mark.parametrize("seconds,starts", [
    (1.0, [0] * 8),  # zero-padded to 2 s: every clip is the whole (padded) audio
    (5.0, [48000 * k // 7 for k in range(8)]),  # k*3/7 s
    (40.0, [608000 * k // 7 for k in range(8)]),  # k*38/7 s
])
def test_hubert_clips_and_joint_normalisation(seconds, starts):
    from transformers import Wav2Vec2FeatureExtractor

    from affectgpt.model.hf_encoders import clip_starts, hubert_clips, joint_normalize

    n = int(seconds * 16000)
    wave = torch.from_numpy(np.random.default_rng(1).normal(0.1, 0.5, n).astype(np.float32))
    padded = torch.cat([wave, wave.new_zeros(max(0, 32000 - n))])
    assert clip_starts(len(padded)) == starts
    clips = hubert_clips(wave)
    assert clips.shape == (8, 32000)
    assert all(torch.equal(clips[k], padded[s : s + 32000]) for k, s in enumerate(starts))
    x = clips.numpy().astype(np.float64)
    mine = joint_normalize(clips).numpy()
    np.testing.assert_allclose(mine, (x - x.mean()) / np.sqrt(x.var() + 1e-7), rtol=0, atol=1e-6)
    # the released call: the extractor on the 2-D tensor treats all 8 clips as ONE utterance
    fx = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True)
    released = fx(clips, sampling_rate=16000, return_tensors="np").input_values[0]
    np.testing.assert_allclose(mine, released, rtol=0, atol=1e-5)
    if seconds > 2:  # per-clip normalisation would differ: the statistics really are joint
        per_clip = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-7)
        assert np.abs(mine - per_clip).max() > 1e-3


@pytest.mark.integration
def test_training_continues_from_the_converted_checkpoint(fx, converted, tmp_path):
    """train.py experiment=affectgpt-official trainer.init_from=DIR starts from the released weights: at lr 0 the
    weights it saves are the converted ones (a fresh init would differ everywhere)."""
    from safetensors.torch import load_file

    out = tmp_path / "finetune"
    r = run_in_process(
        ["train.py", "experiment=affectgpt-official", f"trainer.init_from={converted}",
         "data=manifest", f"data.root={fx / 'data'}", f"output_dir={out}", *convert_args(fx, out)[2:],
         "model.llm.dtype=float32", "trainer.mixed_precision=no", "trainer.max_steps=1", "trainer.batch_size=2",
         "trainer.num_workers=0", "trainer.lr=0.0", "eval.max_samples=1", "eval.max_new_tokens=2", "device=cpu"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "trainable weights initialised from" in r.stderr
    before, after = load_file(str(converted / "trainable.safetensors")), load_file(str(out / "checkpoints/final/"
                                                                                        "trainable.safetensors"))
    assert set(before) == set(after) and all(torch.equal(before[k], after[k]) for k in before)
