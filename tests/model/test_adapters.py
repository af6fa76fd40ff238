"""Adapters: qformer / attention / mean per modality, window counts, padding invariance,
feature standardisation, pre-fusion with a missing modality."""

import pytest
import torch

from affectgpt.model.adapters import AdapterConfig, AudioAdapter, FeatureStandardizer, PreFusion, VideoAdapter

SMALL = dict(hidden_size=32, num_layers=1, num_heads=4, intermediate_size=64)


@pytest.mark.parametrize("kind,tokens", [("qformer", 6), ("attention", 3), ("mean", 1)])
def test_video_adapter_kinds(kind, tokens):
    torch.manual_seed(0)
    a = VideoAdapter(AdapterConfig(kind=kind, num_query_tokens=6 if kind == "qformer" else 3, **SMALL), 16, 5, 24)
    out = a(torch.randn(2, 4, 5, 16))
    assert out.shape == (2, tokens, 24) and a.num_tokens == tokens
    out.sum().backward()
    assert a.frame_position.weight.grad.abs().sum() > 0  # frame order reaches every kind
    with pytest.raises(ValueError, match="exceed video adapter max_frames"):
        a(torch.randn(1, 65, 5, 16))


def test_video_adapter_accepts_bf16_features():
    a = VideoAdapter(AdapterConfig(kind="attention", num_query_tokens=1, **SMALL), 16, 1, 24)
    assert a(torch.randn(1, 8, 1, 16, dtype=torch.bfloat16)).dtype == torch.float32


def test_attention_heads_must_divide_the_width():
    with pytest.raises(ValueError, match="width 18 is not divisible by num_heads=4"):
        VideoAdapter(AdapterConfig(kind="attention", **SMALL), 18, 1, 24)


@pytest.mark.parametrize("kind", ["qformer", "attention", "mean"])
def test_audio_adapter_is_invariant_to_the_other_clips_in_the_batch(kind):
    torch.manual_seed(0)
    cfg = AdapterConfig(
        kind=kind, window_seconds=0.2, stride_seconds=0.1, queries_per_window=2, num_query_tokens=2, **SMALL
    )
    a = AudioAdapter(cfg, 16, 24).eval()
    short, long = torch.randn(13, 16), torch.randn(57, 16)
    alone, n_alone = a([short])
    both, n_both = a([short, long])
    assert n_alone[0] == n_both[0]
    torch.testing.assert_close(alone[0, : n_alone[0]], both[0, : n_both[0]], atol=1e-5, rtol=1e-5)
    if kind == "qformer":  # windows of 10 frames every 5: 13 → 2 windows, 57 → 11 windows; 2 queries each
        assert n_both == [4, 22] and both.shape == (2, 22, 24)
        assert [a.num_tokens(13), a.num_tokens(57), a.num_tokens(10), a.num_tokens(1)] == [4, 22, 2, 2]
    else:
        assert n_both == [2 if kind == "attention" else 1] * 2


def test_audio_adapter_rejects_bad_windows():
    with pytest.raises(ValueError, match="window_seconds and stride_seconds must be > 0"):
        AudioAdapter(AdapterConfig(kind="qformer", window_seconds=0, **SMALL), 16, 24)
    with pytest.raises(ValueError, match="kind must be qformer\\|attention\\|mean"):
        AudioAdapter(AdapterConfig(kind="conv", **SMALL), 16, 24)


def test_standardizer_removes_the_shared_component():
    torch.manual_seed(0)
    shared = torch.randn(1, 5, 8) * 10
    feats = shared + torch.randn(64, 5, 8) * 0.1
    s = FeatureStandardizer(8, 5)
    s.fit(feats)
    out = s(feats)
    assert out.mean((0,)).abs().max() < 1e-4
    torch.testing.assert_close(out.std((0, 1)), torch.ones(8), atol=0.05, rtol=0.05)


def test_prefusion_ignores_a_missing_modality():
    torch.manual_seed(0)
    f = PreFusion(video_dim=16, audio_dim=12, llm_dim=24, fusion_dim=32)
    video = torch.randn(2, 4, 1, 16)
    audio = torch.randn(2, 7, 12)
    mask = torch.tensor([[True] * 7, [False] * 7])  # sample 1 has no audio
    out = f(video, torch.tensor([True, True]), audio, mask)
    other = f(video, torch.tensor([True, True]), torch.randn(2, 7, 12), mask)
    assert out.shape == (2, 1, 24)
    torch.testing.assert_close(out[1], other[1])  # its (absent) audio features do not matter
    assert not torch.allclose(out[0], other[0])
