"""``data.visual=faces`` in the feature cache: face crops are encoded, the choice is part of the cache key,
and a sample without a face file is an error entry (counted), never a frame fallback."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from affectgpt.recipe import features as F
from helpers import compose, data_root


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from affectgpt.data.manifest import Sample, read_manifest
    from affectgpt.model.build import build_model

    data = data_root(tmp_path_factory)
    torch.manual_seed(0)
    model = build_model(compose(tmp_path_factory.mktemp("f"), data).model, device="cpu")
    faces_dir = tmp_path_factory.mktemp("faces")
    samples = []
    for i, s in enumerate(read_manifest(data / "train.jsonl")[:3]):
        face = None
        if i < 2:  # the third sample has no face file
            face = faces_dir / f"{s.name}.npy"
            np.save(face, np.random.default_rng(i).integers(0, 256, (5, 20, 20, 3), dtype=np.uint8))
        face = face or faces_dir / "none.npy"
        samples.append(Sample(s.name, s.video, s.audio, s.subtitle, extra={"faces": str(face)}))
    return model, samples


def test_face_features_are_cached_under_their_own_key(setup, tmp_path):
    from affectgpt.data.media import load_faces
    from affectgpt.model.encoders import resize_crop

    model, samples = setup
    frames_ident, faces_ident = F.encoder_identity(model), F.encoder_identity(model, visual="faces")
    assert "visual" not in frames_ident["decode"] and faces_ident["decode"]["visual"] == "faces"
    cache = tmp_path / "cache"
    F.write_identity(cache, faces_ident)
    F.extract(model, samples, cache, "train-x", faces_ident, shard_size=8, num_workers=0, progress=False,
              visual="faces")
    store = F.FeatureStore(cache, faces_ident)
    plan = model.token_plan()
    crops = resize_crop(torch.from_numpy(load_faces(Path(samples[0].extra["faces"]), plan.frames)), plan.image_size,
                        plan.interpolation, plan.resize_mode)
    with torch.no_grad():
        expected = model.vision(crops[None])[0]
    assert torch.allclose(store.get(samples[0].name)["video"], expected, atol=1e-5)
    missing = store.get(samples[2].name)
    assert "none.npy: file not found" in missing["error"] and missing["video"] is None
    with pytest.raises(F.StaleCacheError, match="decode.visual"):
        F.FeatureStore(cache, frames_ident)  # a frames run refuses a faces cache
