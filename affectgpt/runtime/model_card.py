"""The ``README.md`` model card of an export, in the Hugging Face model-card format.

YAML front matter (library, base model when it is a hub id, a license placeholder, tags, the
datasets the training config names), then what the model is (encoders, adapters, LoRA), how it
was trained (data, steps, batch, learning rates), how well it did (the run's ``metrics.json``),
the exact ``infer.py`` command, and intended use and limits. Everything comes from the export's
``affectgpt.json`` record and the checkpoint's own files; nothing is typed in by hand.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from omegaconf import OmegaConf

CARD = "README.md"
TAGS = ("affectgpt", "emotion-recognition", "explainable-emotion-recognition", "multimodal", "video", "audio", "lora")
LICENSE_PLACEHOLDER = "other"  # the owner sets the real licence: base weights and training data carry their own


def training_datasets(cfg: dict) -> list[str]:
    """Dataset names the training config reads: source names, manifest stems, or the synthetic set."""
    data = cfg.get("data") or {}
    kind = data.get("kind")
    if kind == "synthetic":
        return ["affectgpt-synthetic"]
    if kind == "sources":
        sources = (data.get("train_sources") or []) + (data.get("val_sources") or [])
        names = [s.get("name") or s.get("format") for s in sources]
        return list(dict.fromkeys(n for n in names if n))
    return list(dict.fromkeys(Path(data[k]).stem for k in ("train_manifest", "val_manifest") if data.get(k)))


def is_hub_id(name: str) -> bool:
    """'org/name' that is not a local path: what the hub accepts as ``base_model``."""
    return (name.count("/") == 1 and not name.startswith((".", "/", "~")) and not Path(name).exists())


def _yaml_list(key: str, items) -> list[str]:
    return [f"{key}:"] + [f"- {json.dumps(str(x))}" for x in items] if items else []


def front_matter(meta: dict, datasets: list[str]) -> str:
    base = meta["llm"]["base"]
    lines = ["---", f"library_name: {'transformers' if meta['kind'] == 'merged' else 'peft'}",
             f"license: {LICENSE_PLACEHOLDER}  # placeholder: set the licence of the weights and data before sharing"]
    if is_hub_id(base):
        lines.append(f"base_model: {json.dumps(base)}")
    lines += _yaml_list("tags", TAGS) + _yaml_list("datasets", datasets) + ["---"]
    return "\n".join(lines)


def _metrics_lines(metrics: dict | None, where: Path, state: dict) -> list[str]:
    if not metrics:
        return [f"No validation metrics: `{where}` was not found (the run did not evaluate)."]
    last = [h for h in state.get("history", []) if h.get("val_f1") is not None]
    f1 = (metrics.get("exact") or {}).get("f1")
    stale = []
    if last and f1 is not None and abs(last[-1]["val_f1"] - f1) > 1e-9:  # metrics.json is per run, not per checkpoint
        stale = ["", f"Note: this checkpoint's last validation (step {last[-1]['step']}) gave label F1 "
                     f"{last[-1]['val_f1']:.3f}, not {f1:.3f}: the file belongs to another checkpoint of the run."]
    lines = [f"From `{where}` (validation split, greedy decoding; fractions in 0..1):", "",
             "| metric | value |", "|---|---:|"]
    exact = metrics.get("exact") or {}
    for k in ("f1", "precision", "recall"):
        if exact.get(k) is not None:
            lines.append(f"| exact-match label {k} | {exact[k]:.3f} |")
    if exact.get("n") is not None:
        lines.append(f"| samples | {exact['n']} |")
    label = (metrics.get("scorer") or {}).get("label") or {}
    for key, name in (("M1", "M1 F1"), ("M2", "M2 F1"), ("m_avg_f1", "M-avg F1"), ("wheel_l1_f1", "wheel L1 F1")):
        v = label.get(key)
        v = v.get("f1") if isinstance(v, dict) else v
        if v is not None:
            lines.append(f"| scorer {name} | {v:.3f} |")
    clue = (metrics.get("scorer") or {}).get("clue") or {}
    if clue.get("f1") is not None:
        lines.append(f"| clue F1 ({clue.get('method')}) | {clue['f1']:.3f} |")
    if metrics.get("skipped"):
        lines.append(f"| skipped | {metrics['skipped']} |")
    return lines + stale


def model_card(meta: dict, cfg: dict, state: dict, metrics: dict | None, metrics_path: Path, artifact: str) -> str:
    """The card's text for an export record ``meta`` of a checkpoint with config ``cfg`` and trainer ``state``."""
    m, llm, tr = meta["model"], meta["llm"], cfg.get("trainer") or {}
    v, a, lora = m.get("vision"), m.get("audio"), m["llm"]["lora"]
    va, aa = m.get("video_adapter") or {}, m.get("audio_adapter") or {}
    plan = meta.get("token_plan") or {}
    datasets = training_datasets(cfg)
    data = cfg.get("data") or {}
    ckpt_arg = shlex.quote(f"checkpoint={artifact}")  # one shell word, whatever the folder is called
    steps = state.get("step", meta.get("source", {}).get("step"))
    kind = "merged model (LoRA folded into the LLM)" if meta["kind"] == "merged" else "adapter bundle (peft LoRA)"
    out = [front_matter(meta, datasets), "",
           f"# AffectGPT {(cfg.get('model') or {}).get('name', '')} ({meta['kind']})", "",
           "Explainable multimodal emotion recognition: from a clip's frames, its voice and its subtitle the model "
           "writes the visual, acoustic and textual clues and ends with an open-vocabulary list of emotions. "
           f"This artifact is an {kind}, written by `python -m affectgpt.export` (format {meta['format']} "
           f"v{meta['version']}).", "",
           "## Model", "",
           f"- Vision encoder (frozen, open_clip): `{v['model']}` / `{v.get('pretrained')}`, "
           f"{v.get('frames')} frames, {v.get('output')} output" if v else "- Vision encoder: none",
           f"- Audio encoder (frozen, Whisper): `{a['model']}`, long audio: {a.get('long_audio')}" if a
           else "- Audio encoder: none",
           f"- Video adapter: {va.get('kind')}, {va.get('num_query_tokens')} queries, width {va.get('hidden_size')}, "
           f"{va.get('num_layers')} layers -> {plan.get('video_tokens', '?')} LLM tokens"
           if v else "- Video adapter: none",
           f"- Audio adapter: {aa.get('kind')}, {aa.get('queries_per_window')} queries per "
           f"{aa.get('window_seconds')} s window, width {aa.get('hidden_size')}, {aa.get('num_layers')} layers"
           if a else "- Audio adapter: none",
           f"- LLM: `{llm['base']}` ({llm['dtype']}, vocabulary {llm['vocab_size']})",
           f"- LoRA: r={lora['r']}, alpha={lora['alpha']}, dropout={lora['dropout']}, target modules "
           f"{', '.join(lora['target_modules'])}; fully trained: "
           f"{', '.join(lora.get('modules_to_save') or []) or 'none'}",
           "", "## Training", "",
           f"- Data: {data.get('kind')} ({', '.join(datasets)})"
           + (f"; train manifest `{data['train_manifest']}`" if data.get("train_manifest") else ""),
           f"- Steps: {steps} of {tr.get('max_steps')} planned, batch {tr.get('batch_size')} x grad accumulation "
           f"{tr.get('grad_accum')}, {state.get('samples_seen', '?')} samples seen",
           f"- Learning rate {tr.get('lr')} (adapters {tr.get('lr_adapter') or tr.get('lr')}, LoRA "
           f"{tr.get('lr_lora') or tr.get('lr')}), warmup {tr.get('warmup_steps')} steps, weight decay "
           f"{tr.get('weight_decay')}, precision {tr.get('mixed_precision')}, seed {cfg.get('seed')}",
           f"- Checkpoint: `{meta.get('source', {}).get('checkpoint')}` (trainable weights sha256 "
           f"`{meta.get('source', {}).get('trainable_sha256', '')[:16]}…`)",
           "", "## Evaluation", "", *_metrics_lines(metrics, metrics_path, state),
           "", "## Use", "", "```bash",
           f'python infer.py {ckpt_arg} video=clip.mp4 subtitle="What the person says."',
           f"python infer.py {ckpt_arg} manifest=test.jsonl output=predictions.jsonl score=true",
           f"python demo.py {ckpt_arg}   # a local web page", "```", "",
           f"Generation defaults: {json.dumps(meta.get('generation', {}))}.", "",
           "## Intended use and limits", "",
           "- For research on emotion recognition and its explanations, on clips whose people agreed to be analysed.",
           "- Not for decisions about people (hiring, policing, health, credit): emotions shown are not emotions felt, "
           "and the labels come from annotators of a few datasets and cultures.",
           "- The description can name clues that are not in the clip; read it as a hypothesis, not evidence.",
           "- Scores above hold for the validation split named here only."]
    if datasets == ["affectgpt-synthetic"]:
        out.append("- Trained on synthetic drawn faces and tones only: it recognises nothing in real video.")
    return "\n".join(out) + "\n"


def write_model_card(folder: Path, meta: dict, checkpoint: Path, artifact: str | Path) -> Path:
    """Write ``folder/README.md`` for the export of ``checkpoint`` (config, state, run metrics read from it)."""
    checkpoint = Path(checkpoint)
    cfg = OmegaConf.to_container(OmegaConf.load(checkpoint / "config.yaml"), resolve=False)
    state_path = checkpoint / "trainer_state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    metrics_path = Path(cfg.get("output_dir") or checkpoint.parent.parent) / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else None
    path = Path(folder) / CARD
    path.write_text(model_card(meta, cfg, state, metrics, metrics_path, str(artifact)), encoding="utf-8")
    return path
