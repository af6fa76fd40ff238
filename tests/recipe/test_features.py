"""affectgpt/recipe/features.py: cached features give the online loss, stale caches are refused, extraction resumes."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from affectgpt.recipe import features as F
from helpers import SMALL, compose, data_root, run


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from affectgpt.data.manifest import read_manifest
    from affectgpt.model.build import build_model

    data = data_root(tmp_path_factory)
    cfg = compose(tmp_path_factory.mktemp("f"), data)
    torch.manual_seed(0)
    model = build_model(cfg.model, device="cpu")
    samples = read_manifest(data / "train.jsonl")[:8]
    return cfg, model, samples


def _batch(model, samples, store):
    from affectgpt.data.collate import ClipDataset, Collator

    plan = model.token_plan()
    ds = ClipDataset(samples, plan, seed=0, features=store)
    return Collator(model.tokenizer, plan, max_length=512)([ds[i] for i in range(len(ds))])


def test_cached_features_give_the_online_loss(setup, tmp_path):
    cfg, model, samples = setup
    ident = F.encoder_identity(model)
    F.write_identity(tmp_path, ident)
    assert (
        F.extract(model, samples, tmp_path, "train-x", ident, shard_size=4, batch_size=3, num_workers=0, progress=False)
        == 8
    )
    store = F.FeatureStore(tmp_path, ident)
    online, cached = _batch(model, samples, None), _batch(model, samples, store)
    assert "frames" in online and "video_feats" in cached and "audio_feats" in cached and "audio" not in cached
    for key in ("input_ids", "attention_mask", "labels", "video_present"):
        assert torch.equal(online[key], cached[key]), key
    model.train()
    torch.manual_seed(1)
    out = model(online)
    loss_online, n = out.loss_sum, out.target_tokens
    torch.manual_seed(1)  # the same dropout masks
    out = model(cached)
    loss_cached, m = out.loss_sum, out.target_tokens
    assert n == m and n > 0
    assert abs(loss_online.item() - loss_cached.item()) <= 1e-5 * abs(loss_online.item()), (loss_online, loss_cached)


def test_stale_cache_is_refused_naming_what_changed(setup, tmp_path):
    cfg, model, samples = setup
    ident = F.encoder_identity(model)
    other = json.loads(json.dumps(ident))
    other["vision"]["weights"] = "0" * 20
    other["audio"]["preprocessing"]["pad_to_30s"] = not ident["audio"]["preprocessing"]["pad_to_30s"]
    F.write_identity(tmp_path, other)
    with pytest.raises(F.StaleCacheError) as e:
        F.FeatureStore(tmp_path, ident)
    msg = str(e.value)
    assert "stale feature cache" in msg and "vision.weights" in msg and "audio.preprocessing.pad_to_30s" in msg
    with pytest.raises(F.StaleCacheError):
        F.write_identity(tmp_path, ident)  # never overwritten silently
    # the identity follows the weights, not the path they were loaded from
    assert F.weights_fingerprint(model.vision.visual) == ident["vision"]["weights"]
    model.vision.visual.conv1.weight.data[0, 0, 0, 0] += 1.0
    try:
        assert F.encoder_identity(model)["vision"]["weights"] != ident["vision"]["weights"]
    finally:
        model.vision.visual.conv1.weight.data[0, 0, 0, 0] -= 1.0


def test_changed_media_is_stale(setup, tmp_path):
    import dataclasses
    import shutil

    cfg, model, samples = setup
    ident = F.encoder_identity(model)
    F.write_identity(tmp_path, ident)
    copy = tmp_path / "clip.mp4"
    shutil.copy(samples[0].video, copy)
    moved = [dataclasses.replace(samples[0], video=str(copy))]
    F.extract(model, moved, tmp_path, "one", ident, progress=False, num_workers=0)
    store = F.FeatureStore(tmp_path, ident)
    store.check_media(moved)
    with open(copy, "ab") as f:
        f.write(b"\0" * 10)
    with pytest.raises(F.StaleCacheError, match="media changed since extraction"):
        store.check_media(moved)


@pytest.mark.integration
def test_extraction_resumes_and_training_refuses_a_stale_cache(setup, tmp_path):
    cfg, model, samples = setup
    cache = tmp_path / "cache"
    ident = F.encoder_identity(model)
    F.write_identity(cache, ident)
    F.extract(model, samples, cache, "train-x", ident, shard_size=4, num_workers=0, progress=False)
    first = cache / "train-x-00000.safetensors"
    mtime = first.stat().st_mtime_ns
    (cache / "train-x-00001.safetensors").unlink()  # as if killed before the second shard was renamed
    assert F.extract(model, samples, cache, "train-x", ident, shard_size=4, num_workers=0, progress=False) == 4
    assert first.stat().st_mtime_ns == mtime and not F.FeatureStore(cache, ident).missing(samples)
    # the CLI on a cache made for other weights: one clear error, no training. A real process on purpose: the
    # features command's one test of its exit code and stderr as a process (its other command lines run in process)
    stale = json.loads((cache / "identity.json").read_text())
    stale["audio"]["weights"] = "f" * 20
    (cache / "identity.json").write_text(json.dumps(stale))
    r = run(
        [
            sys.executable,
            "-m",
            "affectgpt.apps.features",
            f"data.root={cfg.data.root}",
            *SMALL,
            f"features.cache_dir={cache}",
        ]
    )
    assert r.returncode != 0 and "stale feature cache" in r.stderr and "audio.weights" in r.stderr
