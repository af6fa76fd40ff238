"""Modality ablation: does the model read the video, the audio and the subtitle?

``python -m affectgpt.apps.ablation checkpoint=DIR manifest=FILE [drop=video,audio,subtitle] [output=FILE.json]``
runs the manifest once with every modality and once with each modality in ``drop`` removed:

- ``video`` / ``audio``: every clip is read as a clip without that stream (the token plan's
  ``has_vision`` / ``has_audio`` off: no frames or waveform, no placeholders, the prompt says
  "this clip has no video"), the same path a real clip without the stream takes;
- ``subtitle``: the subtitle is replaced by an empty one ("This video has no subtitle.").

Per condition it reports label F1 (exact match of the parsed emotion list) and, for the
synthetic data, the accuracy of each cue family next to its chance level: the *visual* word
(happy / sad / angry / none), the *vocal* word (calm / anxious / excited) and "frustrated",
which needs both. Cue scores are balanced accuracies (the mean over the true classes of the
share answered right), so any answer that ignores the clip (and names one class of the family)
scores 1/K in expectation; that is the chance level.
Plain accuracy and the best constant answer's accuracy are reported too. For
the describe task it also reports the share of descriptions that contain each clue sentence
exactly (any of the generator's paraphrases, filled with the clip's values).
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from itertools import combinations
from pathlib import Path

from omegaconf import OmegaConf

from affectgpt.apps.cli import Command, UsageError, compose, run
from affectgpt.data import synthetic as syn
from affectgpt.data.manifest import read_manifest
from affectgpt.data.synthetic import AUDIO_WORDS, VISUAL_WORDS, cues_of, subtitle_kind

DROPPABLE = ("video", "audio", "subtitle")


# ----------------------------------------------------------------------------- scores
def _family_answer(family: str, words: set[str]) -> str:
    """What an emotion set says about one cue family: a class name, "none" or "several"."""
    if family == "frustrated":
        return "yes" if "frustrated" in words else "no"
    found = sorted(words & set(VISUAL_WORDS if family == "visual" else AUDIO_WORDS))
    return found[0] if len(found) == 1 else ("none" if not found else "several")


def cue_scores(predicted: list[list[str]], gold: list[tuple[str, ...]]) -> dict:
    """Per cue family (visual, vocal, frustrated): balanced accuracy with its chance level 1/K,
    plain accuracy with the best constant answer's, and the number of samples."""
    out = {}
    for family in ("visual", "vocal", "frustrated"):
        key = "audio" if family == "vocal" else family
        truth = [_family_answer(key, set(g)) for g in gold]
        answer = [_family_answer(key, {w.lower() for w in p}) for p in predicted]
        classes = sorted(set(truth))
        recall = [sum(a == t for a, t in zip(answer, truth, strict=False) if t == c) / truth.count(c) for c in classes]
        out[family] = {"balanced_accuracy": sum(recall) / len(classes), "chance": 1 / len(classes),
                       "accuracy": sum(a == t for a, t in zip(answer, truth, strict=False)) / len(truth),
                       "constant_accuracy": max(truth.count(c) for c in classes) / len(truth), "n": len(truth)}
    return out


def clue_sentences(sample) -> dict[str, tuple[str, ...]]:
    """The sentences a correct description of a synthetic clip contains, per kind (any one of
    each tuple's paraphrases will do); "frustration" only for clips that are frustrated."""
    visual, audio = syn.cues_of(sample.emotions)
    kind, hinted = syn.subtitle_kind(sample.subtitle, sample.emotions)
    out = {"visual": syn._VISUAL_CLUES[visual], "audio": syn._AUDIO_CLUES[audio],
           "subtitle": tuple(t.format(s=sample.subtitle, e=hinted) for t in syn._SUBTITLE_CLUES[kind])}
    if "frustrated" in sample.emotions:
        out["frustration"] = syn._FRUSTRATION
    out["conclusion"] = (syn.conclusion(sample.emotions),)
    return out


def clue_shares(texts: list[str], samples) -> dict[str, dict]:
    """Per sentence kind: the share of descriptions containing one of its correct sentences verbatim."""
    hits: dict[str, list[bool]] = {}
    for text, s in zip(texts, samples, strict=False):
        for kind, options in clue_sentences(s).items():
            hits.setdefault(kind, []).append(any(o in text for o in options))
    return {k: {"share": sum(v) / len(v), "n": len(v)} for k, v in hits.items()}


def best_constant(gold: list[tuple[str, ...]]) -> dict:
    """The emotion list that, answered for every sample, maximises label F1 (searched exhaustively
    over sets of up to 4 of the gold words), and its F1."""
    from affectgpt.recipe.telemetry import label_prf  # lazy: the command stays torch-free until it needs the model

    vocab = sorted({w for g in gold for w in g})
    best = {"emotions": [], "f1": 0.0}
    for k in range(1, min(4, len(vocab)) + 1):
        for words in combinations(vocab, k):
            f1 = label_prf([list(words)] * len(gold), [list(g) for g in gold])["f1"]
            if f1 > best["f1"] + 1e-12:
                best = {"emotions": list(words), "f1": f1}
    return best


def is_synthetic(samples) -> bool:
    try:
        for s in samples:
            cues_of(s.emotions or ())
            subtitle_kind(s.subtitle, s.emotions)
    except ValueError:
        return False
    return True


# ----------------------------------------------------------------------------- conditions
def without(samples, plan, drop: str):
    """The samples and token plan of the condition that removes ``drop`` ("full": nothing)."""
    if drop == "full":
        return samples, plan
    if drop == "video":
        return samples, replace(plan, has_vision=False)
    if drop == "audio":
        return samples, replace(plan, has_audio=False)
    if drop == "subtitle":
        return [replace(s, subtitle="") for s in samples], plan
    raise ValueError(f"drop: unknown modality {drop!r}; expected some of {', '.join(DROPPABLE)}")


def evaluate_condition(model, samples, drop: str, task: str = "describe", batch_size: int = 16,
                       max_new_tokens: int = 96, progress: bool = False) -> dict:
    """Generate for every sample with ``drop`` removed (one modality, or several joined by "+");
    label F1, cue scores and clue shares."""
    from affectgpt.recipe.telemetry import label_prf  # lazy: the command stays torch-free until it needs the model
    from affectgpt.runtime.inference import predict  # lazy: the command stays torch-free until it needs the model

    inputs, plan = samples, model.token_plan()
    for d in drop.split("+"):  # "video+subtitle": both removed
        inputs, plan = without(inputs, plan, d)
    if not (plan.has_vision or plan.has_audio):
        raise ValueError("removing this modality leaves the model neither video nor audio")
    rows = {r["name"]: r for r in predict(model, inputs, task=task, batch_size=batch_size, plan=plan,
                                           max_new_tokens=max_new_tokens, progress=progress)}
    errors = [r for r in rows.values() if r.get("error")]
    if errors:
        raise RuntimeError(
            f"{len(errors)} clips failed under drop={drop}, first: {errors[0]['name']}: {errors[0]['error']}"
        )
    predicted = [rows[s.name]["emotions"] for s in samples]
    gold = [tuple(s.emotions) for s in samples]
    result = {"label": label_prf(predicted, [list(g) for g in gold])}
    if is_synthetic(samples):
        result["cues"] = cue_scores(predicted, gold)
        if task == "describe":
            result["clues"] = clue_shares([rows[s.name]["description"] for s in samples], samples)
    return result


def untrained_copy(checkpoint: str | Path, device: str = "cpu", trust_remote_code: bool = False):
    """The model a checkpoint describes with freshly initialised adapters and LoRA (nothing trained loaded)."""
    import torch  # lazy: the command stays torch-free until it needs the model

    from affectgpt.model.artifact import check_remote_code  # lazy: torch-free until the model is needed
    from affectgpt.model.build import build_model  # lazy: the command stays torch-free until it needs the model

    cfg = OmegaConf.load(Path(checkpoint) / "config.yaml")
    check_remote_code(OmegaConf.select(cfg, "model.llm.trust_remote_code", default=False), trust_remote_code,
                      Path(checkpoint) / "config.yaml")
    cfg.model.llm.trust_remote_code = bool(trust_remote_code)
    torch.manual_seed(int(cfg.get("seed", 0)))
    model = build_model(cfg.model, device=device)
    return model.eval()


def run_ablation(model, samples, drop=DROPPABLE, task: str = "describe", batch_size: int = 16,
                 max_new_tokens: int = 96, progress: bool = False) -> dict:
    """``{"task", "n", "conditions": {"full": ..., "no_video": ...}, "best_constant": ...}``."""
    missing = [s.name for s in samples if s.emotions is None]
    if missing:
        raise ValueError(f"{len(missing)} samples have no gold emotions (first {missing[0]!r}); nothing to score")
    conditions = {}
    for d in ("full", *drop):
        key = "full" if d == "full" else f"no_{d}"
        conditions[key] = evaluate_condition(model, samples, d, task, batch_size, max_new_tokens, progress)
    return {"task": task, "n": len(samples), "conditions": conditions,
            "best_constant": best_constant([tuple(s.emotions) for s in samples])}


def format_table(report: dict) -> str:
    """One row per condition: label F1, each cue family's balanced accuracy (chance), clue shares."""
    conds = report["conditions"]
    cues = "cues" in conds["full"]
    w = max(12, *map(len, conds))  # combined drops ("no_video+subtitle") widen the first column
    head = f"{'condition':<{w}} {'label F1':>8}"
    if cues:
        head += "".join(f" {f + ' (chance)':>22}" for f in ("visual", "vocal", "frustrated"))
    clue_kinds = list(conds["full"].get("clues", {}))
    head += "".join(f" {k[:10]:>10}" for k in clue_kinds)
    lines = [f"task {report['task']}, {report['n']} clips; cue columns: balanced accuracy; "
             f"clue columns: share of descriptions with the exact sentence", head]
    for name, c in conds.items():
        row = f"{name:<{w}} {c['label']['f1']:>8.3f}"
        if cues:
            row += "".join(f" {c['cues'][f]['balanced_accuracy']:>14.3f} ({c['cues'][f]['chance']:.2f})"
                           for f in ("visual", "vocal", "frustrated"))
        row += "".join(f" {c['clues'][k]['share']:>10.3f}" for k in clue_kinds if "clues" in c)
        lines.append(row)
    bc = report["best_constant"]
    lines.append(f"{'constant':<{w}} {bc['f1']:>8.3f}   (always {', '.join(bc['emotions'])})")
    if "untrained" in report:
        lines.append(f"{'untrained':<{w}} {report['untrained']['label']['f1']:>8.3f}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- command line
ABLATION = Command(prog="python -m affectgpt.apps.ablation", config="ablation", doc=__doc__.split("\n\n")[0],
                   verbatim=("checkpoint", "manifest", "output"))


def parse_args(argv: list[str]):
    """``key=value`` arguments → the schema's AblationConfig (affectgpt/core/config.py; conf/ablation.yaml has the
    defaults), ``drop`` as a tuple of conditions; UsageError (a ValueError) names the bad argument."""
    return _args(compose(ABLATION, argv))


def _args(cfg):
    args = OmegaConf.to_object(cfg)
    args.drop = tuple(str(d).strip() for d in args.drop if str(d).strip())
    bad = [d for d in args.drop if any(part not in DROPPABLE for part in d.split("+"))]
    if bad:
        raise UsageError(f"drop={','.join(bad)}: expected some of {','.join(DROPPABLE)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Exit 0, or one ``error:`` line and 2 (bad input) / 1 (failed run) as ``affectgpt.core.errors`` maps it."""
    return run(ABLATION, _ablation_command, argv)


def _ablation_command(cfg) -> int:
    args = _args(cfg)
    try:
        from affectgpt.runtime.open import open_artifact  # lazy: the command stays torch-free until it needs the model

        samples = read_manifest(args.manifest)
        samples = samples[: args.max_samples] if args.max_samples else samples
        # merge_lora=False: conf/ablation.yaml has no merge option; the model loads as it always did here
        opened = open_artifact(args.checkpoint, device=args.device, merge_lora=False,
                               trust_remote_code=args.trust_remote_code, verify_hashes=args.verify_hashes)
        model = opened.model
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    gen = dict(task=args.task, batch_size=args.batch_size, progress=True,
               max_new_tokens=args.max_new_tokens or (96 if args.task == "describe" else 24))
    try:
        report = run_ablation(model, samples, args.drop, **gen)
    except ValueError as e:
        print(f"error: {args.manifest}: {e}", file=sys.stderr)
        return 2
    if args.untrained:
        report["untrained"] = evaluate_condition(untrained_copy(args.checkpoint, opened.device, args.trust_remote_code),
                                                 samples, "full", **gen)
    report.update(checkpoint=str(args.checkpoint), manifest=str(args.manifest))
    print(format_table(report))
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(report, indent=1) + "\n")
        print(f"report -> {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
