"""The FLOP formula of affectgpt.model.flops (MFU in the training log and the GPU check) against
hand computations on tiny shapes, the peak table, and the MFU the training log reports."""

import json
import logging

import pytest

from affectgpt.model import flops
from affectgpt.recipe.training import TrainRecipe
from helpers import cache_arg, compose


def test_llm_flops_match_hand_count_for_tiny_qwen2():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from affectgpt.model.llm import LoraSettings, wrap_lora

    cfg = Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=256, tie_word_embeddings=True)
    llm = wrap_lora(Qwen2ForCausalLM(cfg), LoraSettings(r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"]))
    shape = flops.llm_shape(llm)
    # Per layer: q 64x64, k 64x32, v 64x32, o 64x64 (head_dim 16, 2 KV heads), gate/up/down 64x128.
    per_layer = 4096 + 2048 + 2048 + 4096 + 3 * 8192
    assert shape.matmul_params == 2 * per_layer == 73_728
    # LoRA r=4: q A 4x64 + B 64x4, v A 4x64 + B 32x4.
    assert shape.lora_params == 2 * (512 + 384) == 1_792
    assert (shape.layers, shape.attn_width, shape.hidden, shape.vocab) == (2, 64, 64, 256)
    # T=10 tokens, 4 targets: 4NT + 6nT + 12·L·T²·d + 4·V·h·T_tgt.
    expected = 4 * 73_728 * 10 + 6 * 1_792 * 10 + 12 * 2 * 100 * 64 + 4 * 256 * 64 * 4
    assert expected == 2_949_120 + 107_520 + 153_600 + 262_144 == 3_472_384
    assert flops.train_flops_per_sequence(shape, 10, 4) == 3_472_384


def test_encoder_flops_match_hand_count(tmp_path):
    from types import SimpleNamespace

    from affectgpt.model.encoders import AudioConfig, AudioEncoder, VisionConfig, VisionEncoder

    dims = dict(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=2)
    (tmp_path / "whisper-tiny-test.json").write_text(json.dumps(dims))
    audio = AudioEncoder(AudioConfig(model="unused", architecture=str(tmp_path / "whisper-tiny-test.json"),
                                     pad_to_30s=False), weights="random")
    vision = VisionEncoder(VisionConfig(model="affectgpt-tiny-vit", pretrained=None, output="pooled", frames=8),
                           weights="random")
    (v, v_items), (a, a_items) = flops.encoder_shapes(SimpleNamespace(vision=vision, audio=audio), 2 * 16000)
    # CLIP tiny-vit: width 64, 2 blocks of in_proj 3·64² + out_proj 64² + MLP 2·64·256; 8x8 patches of 8x8x3.
    assert (v.token_params, v.tokens, v.layers, v.width, v_items) == (2 * 49_152, 65, 2, 64, 8)
    assert v.extra == ((64 * 3 * 8 * 8, 64), (64 * 64, 1))
    assert (
        flops.encoder_forward_flops(v)
        == 2 * 98_304 * 65 + 2 * 12_288 * 64 + 2 * 4_096 + 4 * 2 * 65**2 * 64
        == 16_523_776
    )
    # Whisper: 2 s = 100 frames (not padded); blocks 4·64² + 2·64·256, conv2 64·64·3, conv1 64·80·3 at 200 mel frames.
    assert (a.token_params, a.tokens, a.layers, a.width, a_items) == (2 * 49_152 + 12_288, 100, 2, 64, 1)
    assert a.extra == ((15_360, 200),)
    assert (
        flops.encoder_forward_flops(a) == 2 * 110_592 * 100 + 2 * 15_360 * 200 + 4 * 2 * 100**2 * 64 == 33_382_400
    )


def test_peak_tflops_by_device_name():
    assert flops.peak_tflops("NVIDIA H100 80GB HBM3", None) == 989.0
    assert flops.peak_tflops("NVIDIA H100 PCIe", None) == 756.0
    assert flops.peak_tflops("NVIDIA H200", None) == 989.0
    assert flops.peak_tflops("NVIDIA H200", 500.0) == 500.0
    assert flops.peak_tflops("Some Card", None) is None


@pytest.mark.integration
def test_training_log_reports_mfu_by_the_formula(tmp_path, data, caplog):
    """The training recipe counts each step's model FLOPs from the batches it trained on (checked here
    against the formula by hand, sample by sample) and logs MFU every ``log_every`` steps; on CPU only
    with ``trainer.peak_tflops`` set (on CUDA the card's name gives the peak)."""
    recipe = TrainRecipe(compose(tmp_path / "run", data, cache_arg(data), "trainer.max_steps=2", "trainer.log_every=1",
                                 "trainer.peak_tflops=1e-3"))
    recipe.setup()
    seen, step = [], recipe._train_step

    def spy(micro):
        seen.append(micro)
        return step(micro)

    recipe._train_step = spy
    with caplog.at_level(logging.INFO, logger="affectgpt.train"):
        recipe.train()
    s = flops.llm_shape(recipe.model.llm)
    expected = 0
    for micro in seen:
        for b in micro:
            assert "video_feats" in b and "frames" not in b  # cached features: no encoder term
            targets = (b["labels"][:, 1:] != -100).sum(1).tolist()
            for t, tt in zip(b["attention_mask"].sum(1).tolist(), targets, strict=True):
                expected += (4 * s.matmul_params * t + 6 * s.lora_params * t + 12 * s.layers * t * t * s.attn_width
                             + 4 * s.vocab * s.hidden * tt)
    assert len(seen) == 2 and expected > 0
    assert recipe.meter.flops == expected
    lines = [r.getMessage() for r in caplog.records if "MFU" in r.getMessage()]
    assert [line.split(":")[0] for line in lines] == ["step 1", "step 2"], lines
    assert all("(peak 0.001 TFLOP/s)" in line for line in lines)


def test_no_mfu_on_cpu_without_a_peak(tmp_path, data):
    recipe = TrainRecipe(compose(tmp_path / "run", data, cache_arg(data), "trainer.max_steps=1"))
    recipe.setup()
    assert recipe.peak_tflops is None
    assert recipe._step_flops([]) == 0.0
