"""Exports: the merged LLM equals the LoRA model, plain transformers and peft load them, the
artifact records its preprocessing and refuses to load when the rebuilt model differs.

The checkpoint is trained for 2 steps by the real ``train.py`` and then gets seeded noise on its
LoRA B matrices and final norm: two steps leave LoRA B near zero, where merged and unmerged
models agree even if the merge were wrong. The artifacts come from conftest.py (one set per
session, shared with test_infer.py).
"""

import json

import pytest

from helpers import run_python as run

pytestmark = pytest.mark.integration

LOGIT_TOL = 1e-4  # float32: merging reorders the sums W x + B A x; measured max |diff| ~1e-6


@pytest.fixture(scope="module")
def lora_model_and_inputs(artifacts):
    """The checkpoint's LoRA model and the spliced prompt embeddings of two test clips."""
    import torch

    from affectgpt.data.manifest import read_manifest
    from affectgpt.model.affectgpt import AffectGPT
    from affectgpt.runtime.inference import iter_batches

    model = AffectGPT.from_pretrained(artifacts["checkpoint"])
    samples = read_manifest(artifacts["data"] / "test.jsonl")[:2]
    batch = next(iter_batches(model, samples, "describe", batch_size=2, num_workers=0))
    with torch.no_grad():
        embeds = model.embed(batch, model.encode_media(batch))
        logits = model.llm(inputs_embeds=embeds, attention_mask=batch["attention_mask"]).logits
    return model, embeds, batch["attention_mask"], logits


def test_merged_llm_loads_in_plain_transformers_and_matches_lora(artifacts, lora_model_and_inputs):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, embeds, mask, lora_logits = lora_model_and_inputs
    merged = AutoModelForCausalLM.from_pretrained(artifacts["merged"] / "llm")
    assert type(merged).__name__ == "Qwen2ForCausalLM" and not hasattr(merged, "peft_config")
    with torch.no_grad():
        merged_logits = merged(inputs_embeds=embeds, attention_mask=mask).logits
        base = model.llm.get_base_model()
        with model.llm.disable_adapter():  # the same base without LoRA / trained norm
            base_logits = base(inputs_embeds=embeds, attention_mask=mask).logits
    diff = (merged_logits - lora_logits).abs().max().item()
    assert diff <= LOGIT_TOL, f"merged vs LoRA logits differ by {diff}"
    # The test could fail: LoRA + the trained norm move the logits far more than the tolerance.
    assert (base_logits - lora_logits).abs().max().item() > 1000 * LOGIT_TOL
    tok = AutoTokenizer.from_pretrained(artifacts["merged"] / "llm")
    assert tok.convert_tokens_to_ids("<|audio_pad|>") == model.tokenizer.convert_tokens_to_ids("<|audio_pad|>")


def test_peft_puts_the_adapter_onto_the_base(artifacts, lora_model_and_inputs):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    _, embeds, mask, lora_logits = lora_model_and_inputs
    meta = json.loads((artifacts["adapter"] / "affectgpt.json").read_text())
    base = AutoModelForCausalLM.from_pretrained(meta["llm"]["base"])
    peft_model = PeftModel.from_pretrained(base, artifacts["adapter"] / "llm_adapter")
    with torch.no_grad():
        logits = peft_model(inputs_embeds=embeds, attention_mask=mask).logits
    assert (logits - lora_logits).abs().max().item() <= 1e-6
    cfg = json.loads((artifacts["adapter"] / "llm_adapter" / "adapter_config.json").read_text())
    assert cfg["modules_to_save"] == ["model.norm"] and cfg["r"] == 64  # conf/model/tiny.yaml


def test_artifacts_hold_safetensors_and_a_complete_record(artifacts):
    from safetensors import safe_open

    from affectgpt.runtime.export import sha256

    for kind in ("adapter", "merged"):
        folder = artifacts[kind]
        files = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
        assert not {f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl"))}, files
        assert {"affectgpt.json", "adapters.safetensors", "tokenizer/tokenizer.json"} <= files
        meta = json.loads((folder / "affectgpt.json").read_text())
        assert meta["kind"] == kind and meta["format"] == "affectgpt-export"
        video, audio = meta["preprocessing"]["video"], meta["preprocessing"]["audio"]
        assert video["frames"] == 8 and video["image_size"] == [64, 64]
        assert len(video["mean"]) == 3 and audio["sample_rate"] == 16000
        assert meta["token_plan"]["video_tokens"] == 8 and meta["prompt"]["system"].startswith("You are AffectGPT")
        assert "<|im_start|>" in meta["prompt"]["chat_template"]
        assert meta["generation"]["do_sample"] is False
        assert meta["model"]["vision"]["pretrained"].endswith("clip.pt")
        for name, digest in meta["files"].items():
            assert sha256(folder / name) == digest, name
        with safe_open(str(folder / "adapters.safetensors"), "pt") as f:
            keys = list(f.keys())
        assert any(k.startswith("video_adapter.") for k in keys) and any(k.startswith("audio_adapter.") for k in keys)
        assert any(".standardizer." in k for k in keys)
    assert {"llm_adapter/adapter_config.json", "llm_adapter/adapter_model.safetensors"} <= {
        str(p.relative_to(artifacts["adapter"])) for p in artifacts["adapter"].rglob("*")}
    assert (artifacts["merged"] / "llm" / "model.safetensors").is_file()


def test_an_export_whose_record_disagrees_with_the_rebuilt_model_is_refused(artifacts, tmp_path):
    import shutil

    from affectgpt.model.affectgpt import AffectGPT

    bad = tmp_path / "bad"
    shutil.copytree(artifacts["adapter"], bad)
    meta = json.loads((bad / "affectgpt.json").read_text())
    meta["preprocessing"]["video"]["mean"][0] += 0.01  # as if the model were trained with other normalisation
    (bad / "affectgpt.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"affectgpt.json: preprocessing of the rebuilt model differs from the "
                                         r"export.s record: preprocessing.video.mean built"):
        AffectGPT.from_pretrained(bad)


def test_export_replaces_an_old_export_and_refuses_any_other_folder(artifacts, tmp_path):
    import shutil

    from affectgpt.runtime.export import export

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "x.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="notes: exists and is not an AffectGPT export; refusing"):
        export(artifacts["checkpoint"], notes)
    assert [p.name for p in notes.iterdir()] == ["x.txt"]
    out = tmp_path / "out"
    shutil.copytree(artifacts["adapter"], out)
    (out / "stale.txt").write_text("")
    export(artifacts["checkpoint"], out)
    assert (out / "affectgpt.json").is_file() and not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes", "out"]  # no temporary or old folder left


def test_export_cli_rejects_a_folder_that_is_not_a_checkpoint(tmp_path):
    r = run(["-m", "affectgpt.export", f"checkpoint={tmp_path}", f"output={tmp_path / 'out'}"])
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [f"error: {tmp_path}: not a training checkpoint (no config.yaml)"]


def test_from_pretrained_opens_every_artifact_kind_as_the_same_model(artifacts, lora_model_and_inputs):
    """``AffectGPT.from_pretrained`` (the Hugging Face habit) on a checkpoint, an adapter bundle and a merged export:
    an ``AffectGPT`` in eval mode whose logits on the same prompt equal the checkpoint's."""
    import torch

    from affectgpt.model.affectgpt import AffectGPT

    _, embeds, mask, logits = lora_model_and_inputs
    for kind in ("checkpoint", "adapter", "merged"):
        model = AffectGPT.from_pretrained(artifacts[kind], device="cpu")
        assert isinstance(model, AffectGPT) and not model.training, kind
        with torch.no_grad():
            got = model.llm(inputs_embeds=embeds, attention_mask=mask).logits
        torch.testing.assert_close(got, logits, atol=1e-4, rtol=1e-4, msg=kind)
