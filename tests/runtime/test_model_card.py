"""The exports' README.md model card: its front matter and body agree with the checkpoint it came
from (config, trainer state, the run's metrics.json), and its infer.py command runs as written."""

import json
import shlex

import pytest
import yaml

from helpers import run_in_process

pytestmark = pytest.mark.integration


def card(folder):
    text = (folder / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    head, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(head), body


@pytest.mark.parametrize("kind", ["adapter", "merged"])
def test_card_fields_match_the_checkpoint(artifacts, kind):
    front, body = card(artifacts[kind])
    ckpt = artifacts["checkpoint"]
    cfg = yaml.safe_load((ckpt / "config.yaml").read_text())
    state = json.loads((ckpt / "trainer_state.json").read_text())
    metrics = json.loads((ckpt.parent.parent / "metrics.json").read_text())

    assert front["library_name"] == {"adapter": "peft", "merged": "transformers"}[kind]
    assert front["license"] == "other" and "affectgpt" in front["tags"]
    assert front["datasets"] == ["affectgpt-synthetic"]
    assert "base_model" not in front  # the tiny base LLM is a local folder, not a hub id
    lora = cfg["model"]["llm"]["lora"]
    assert f"LoRA: r={lora['r']}, alpha={lora['alpha']}, dropout={lora['dropout']}" in body
    assert ", ".join(lora["target_modules"]) in body
    assert f"`{cfg['model']['vision']['model']}`" in body and f"`{cfg['model']['audio']['model']}`" in body
    trainer = cfg["trainer"]
    assert f"Steps: {state['step']} of {trainer['max_steps']} planned, batch {trainer['batch_size']}" in body
    assert f"| exact-match label f1 | {metrics['exact']['f1']:.3f} |" in body
    assert f"| scorer M-avg F1 | {metrics['scorer']['label']['m_avg_f1']:.3f} |" in body
    assert f"| samples | {metrics['exact']['n']} |" in body
    assert "## Intended use and limits" in body and "synthetic" in body
    assert "belongs to another checkpoint" not in body  # metrics.json is this checkpoint's own evaluation


def test_the_cards_infer_command_runs(artifacts):
    _, body = card(artifacts["adapter"])
    line = next(ln for ln in body.splitlines() if ln.startswith("python infer.py") and "video=" in ln)
    clip = artifacts["data"] / json.loads((artifacts["data"] / "test.jsonl").read_text().splitlines()[0])["video"]
    args = [a.replace("video=clip.mp4", f"video={clip}") for a in shlex.split(line)[1:]] + ["max_new_tokens=4"]
    assert args[:2] == ["infer.py", f"checkpoint={artifacts['adapter']}"]
    r = run_in_process(args)  # the argv a shell makes of the line, run in this process
    assert r.returncode == 0, r.stderr[-2000:]
    assert set(json.loads(r.stdout)) == {"name", "description", "emotions", "task"}


def test_datasets_and_base_model_from_other_configs():
    from affectgpt.runtime.model_card import front_matter, training_datasets

    sources = {"data": {"kind": "sources", "train_sources": [{"name": "mercaptionplus"}, {"name": "emer"}],
                        "val_sources": [{"name": "ovmerd"}, {"name": "emer"}]}}
    assert training_datasets(sources) == ["mercaptionplus", "emer", "ovmerd"]
    manifest = {"data": {"kind": "manifest", "train_manifest": "/d/mer_train.jsonl",
                         "val_manifest": "/d/mer_val.jsonl"}}
    assert training_datasets(manifest) == ["mer_train", "mer_val"]
    front = yaml.safe_load(front_matter({"kind": "merged", "llm": {"base": "Qwen/Qwen2.5-7B-Instruct"}}, ["ovmerd"])
                           .strip("-\n"))
    assert front["base_model"] == "Qwen/Qwen2.5-7B-Instruct" and front["library_name"] == "transformers"


def test_metrics_of_another_checkpoint_are_flagged():
    from affectgpt.runtime.model_card import _metrics_lines

    metrics = {"exact": {"f1": 0.9, "precision": 0.9, "recall": 0.9, "n": 10}}
    state = {"history": [{"step": 100, "val_f1": 0.5}, {"step": 100, "loss": 1.0}]}
    lines = _metrics_lines(metrics, "run/metrics.json", state)
    assert "| exact-match label f1 | 0.900 |" in lines
    assert lines[-1].startswith("Note: this checkpoint's last validation (step 100) gave label F1 0.500, not 0.900")
    assert not any("Note" in ln for ln in _metrics_lines(metrics, "m", {"history": [{"step": 9, "val_f1": 0.9}]}))
