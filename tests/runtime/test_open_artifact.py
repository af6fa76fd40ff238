"""runtime.open.open_artifact, the one loader of every app: device resolution and the LoRA merge policy
(no GPU here: torch.cuda.is_available and the loader are replaced)."""

import pytest
import torch

from affectgpt.model import artifact
from affectgpt.runtime.open import ArtifactError, open_artifact, resolve_merge


@pytest.fixture
def loads(monkeypatch):
    """Every load_model call's keyword arguments; artifact_kind says 'checkpoint' for any folder."""
    calls = []

    def fake_load(cls, path, **kw):
        calls.append(kw)
        return artifact.Loaded(model=object(), kind="checkpoint")

    monkeypatch.setattr(artifact, "load_model", fake_load)
    monkeypatch.setattr(artifact, "artifact_kind", lambda path: "checkpoint")
    return calls


@pytest.mark.parametrize("policy, device, merged", [("auto", "cuda:1", True), ("auto", "cuda", True),
                                                     ("auto", "cpu", False), (True, "cpu", True),
                                                     (False, "cuda:0", False)])
def test_the_merge_policy_merges_on_every_cuda_device(policy, device, merged):
    assert resolve_merge(policy, device) is merged


def test_cuda_1_loads_merged_on_cuda_1(monkeypatch, loads, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    opened = open_artifact(tmp_path, device="cuda:1", merge_lora="auto", trust_remote_code=False)
    assert (opened.device, opened.merge_lora) == ("cuda:1", True)
    assert loads[-1]["device"] == "cuda:1" and loads[-1]["merge_lora"] is True
    assert open_artifact(tmp_path, device="auto").device == "cuda"


def test_without_cuda_auto_is_cpu_unmerged_and_cuda_is_refused(monkeypatch, loads, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    opened = open_artifact(tmp_path)
    assert (opened.device, opened.merge_lora) == ("cpu", False) and loads[-1]["merge_lora"] is False
    for device, says in (("cuda:1", "device=cuda:1 requested but no CUDA device is available"),
                         ("tpu", "device=tpu: expected auto, cpu or cuda")):
        with pytest.raises(ArtifactError, match=says):
            open_artifact(tmp_path, device=device)
    with pytest.raises(ArtifactError, match="merge_lora must be auto, true or false, got 'maybe'"):
        open_artifact(tmp_path, merge_lora="maybe")
    assert len(loads) == 1  # refused settings load nothing


def test_a_load_failure_is_one_line_naming_the_folder(monkeypatch, tmp_path):
    def broken(cls, path, **kw):
        raise OSError("truncated file\nsecond line")

    monkeypatch.setattr(artifact, "load_model", broken)
    monkeypatch.setattr(artifact, "artifact_kind", lambda path: "checkpoint")
    with pytest.raises(ArtifactError, match=r": cannot load \(truncated file\)$"):
        open_artifact(tmp_path, device="cpu")
    with pytest.raises(ArtifactError, match="no such folder"):
        monkeypatch.undo()
        open_artifact(tmp_path / "absent", device="cpu")
