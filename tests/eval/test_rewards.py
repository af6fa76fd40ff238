"""The GRPO rewards (affectgpt/eval/rewards.py): equal to the scorer on the reference predictions, and by hand."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from affectgpt.eval import rewards, score
from affectgpt.eval.parsing import parse_labels
from affectgpt.eval.scorer import resolve_lexicon

ROOT = Path(__file__).resolve().parents[2]
REF = Path(os.environ.get("AFFECTGPT_REFERENCE_DIR", ROOT.parent / "shared" / "reference")) / "ovmer"
PREDS = sorted((REF / "predictions").glob("*.jsonl")) if REF.is_dir() else []


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.skipif(not PREDS, reason=f"reference predictions not at {REF}")
@pytest.mark.parametrize("wheels", [None, "official_emotion_wheel", "converted_emotion_wheel"])
def test_reward_precision_and_recall_average_to_the_scorers(wheels):
    """Over each of the ten baseline files: per wheel, the mean of the reward's per-sample P (and R)
    over the samples the wheel keeps equals the scorer's dataset-level M3-Wk-L1 P (and R) to 1e-9."""
    lexicon = resolve_lexicon(None if wheels is None else REF / wheels)
    gold = _jsonl(REF / "gt" / "mer2024_check-openset.jsonl")
    gold_by = {g["name"]: parse_labels(g["emotions"]) for g in gold}
    assert len(PREDS) == 10
    for path in PREDS:
        preds = _jsonl(path)
        want = score(preds, gold, wheels=lexicon)["label"]
        pred_by = {p["name"]: parse_labels(p["emotions"]) for p in preds}
        per = [rewards.wheel_pr(lexicon, gold_by[n], pred_by.get(n, [])) for n in gold_by]
        for w in range(len(lexicon.wheels)):
            kept = [s[w] for s in per if s[w] is not None]
            block = want[f"M3-W{w + 1}-L1"]
            assert len(kept) == block["n"], (path.name, w)
            assert sum(p for p, _ in kept) / len(kept) == pytest.approx(block["precision"], abs=1e-9), (path.name, w)
            assert sum(r for _, r in kept) / len(kept) == pytest.approx(block["recall"], abs=1e-9), (path.name, w)


def test_ew_f1_by_hand():
    lex = resolve_lexicon(None)
    assert rewards.ew_f1(lex, ["happy"], ["happy"]) == 1.0
    assert rewards.ew_f1(lex, ["happy"], []) == 0.0
    assert rewards.ew_f1(lex, ["happy"], ["xyzzy"]) == 0.0  # a word no wheel knows
    both = rewards.ew_f1(lex, ["happy"], ["happy", "angry"])  # P 1/2, R 1 on every wheel: F1 2/3
    assert both == pytest.approx(2 / 3)


def test_answers_are_read_by_mode():
    direct = "The character's emotional state is happy, calm and anxious."
    assert rewards.answer_labels(direct) == ["happy", "calm", "anxious"] and rewards.has_format(direct)
    assert not rewards.has_format("She looks happy.") and rewards.answer_labels("She looks happy.") == ["happy"]
    think = "<think>The face smiles.</think> <answer>happy, calm and excited</answer>"
    assert rewards.answer_labels(think, "think") == ["happy", "calm", "excited"] and rewards.has_format(think, "think")
    assert rewards.answer_labels(direct, "think") == [] and not rewards.has_format(direct, "think")


def test_terms_weights_and_penalties():
    spec = rewards.RewardSpec({"ew_f1": 1.0, "format": 0.1, "len_p2": 0.5})
    lex = resolve_lexicon(None)
    out = rewards.score_answers(["The character's emotional state is happy, sad, angry and calm.", "happy"],
                                [["happy"], ["happy"]], spec, lex)
    assert out["terms"]["format"] == [1.0, 0.0]
    assert out["terms"]["len_p2"] == [pytest.approx(1 / 4 - 1), 0.0]  # 4 labels for 1: P2 = 1/4
    assert out["total"][1] == pytest.approx(1.0)
    assert rewards.length_penalty("len_p1", 2, 5) == pytest.approx(1 / 4)
    assert rewards.length_penalty("len_p3", 2, 4) == pytest.approx(0.5)
    assert rewards.length_penalty("len_p3", 1, 4) == pytest.approx(1 / 4)  # log 1 = 0: P2's value instead
    assert rewards.length_penalty("len_p3", 3, 2) == 1.0
    with pytest.raises(ValueError, match="unknown reward terms \\['acc'\\]"):
        rewards.RewardSpec({"acc": 1.0})
