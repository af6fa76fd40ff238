"""Clue overlap: sentence split, lexical similarity, greedy one-to-one matching, hand-computed P/R/F."""
from __future__ import annotations

import math

import pytest

from affectgpt.eval import clues, score
from affectgpt.eval.clues import clue_overlap, lexical_similarity, match_count, split_clues

GOLD = "The man frowns. His voice is loud. Therefore he is angry."
PRED = "He frowned deeply. The sky is blue. So he is mad."


def test_split_excludes_the_conclusion():
    assert split_clues(GOLD) == ["The man frowns.", "His voice is loud."]
    assert split_clues("Therefore, the person's emotional state is happy.") == []
    assert split_clues("") == []


def test_lexical_similarity_by_hand():
    # {frown, deep} vs {frown}: 1 / (sqrt(2) * 1)
    assert lexical_similarity("She frowns deeply.", "He frowned.") == pytest.approx(1 / math.sqrt(2))
    assert lexical_similarity("The sky is blue.", "His voice is loud.") == 0.0
    assert lexical_similarity("the of and", "a the") == 0.0  # stop words only


def test_greedy_one_to_one_matching():
    sim = [[0.9, 0.8], [0.85, 0.1]]
    assert match_count(sim, 0.5) == 1  # best pair (0,0) takes row 0 and column 0
    assert match_count([[0.9, 0.8], [0.1, 0.85]], 0.5) == 2
    assert match_count([], 0.5) == 0


def test_clue_overlap_by_hand(monkeypatch):
    monkeypatch.setattr(clues, "minilm_available", lambda: False)
    # sample 1: pred {frown, deep} vs gold {man, frown}: cos 0.5 >= 0.35 -> 1 match of 2 pred, 2 gold
    # sample 2: the prediction has no clue sentence -> P = R = 0
    out = clue_overlap([GOLD, GOLD], [PRED, "Therefore he is angry."])
    assert out["method"] == "lexical"
    assert out["precision"] == pytest.approx(0.25) and out["recall"] == pytest.approx(0.25)
    assert out["f1"] == pytest.approx(0.25)
    with pytest.raises(ValueError):
        clue_overlap([GOLD], [PRED], method="bleu")


def test_score_reports_clues_when_both_sides_have_descriptions(monkeypatch):
    monkeypatch.setattr(clues, "minilm_available", lambda: False)
    golds = [{"name": "a", "emotions": ["angry"], "description": GOLD}]
    preds = [{"name": "a", "description": PRED}]
    out = score(preds, golds)
    assert out["clue"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "method": "lexical"}


@pytest.mark.skipif(not clues.minilm_available(), reason="optional extra 'clue' not installed")
def test_minilm_matches_a_paraphrase():
    out = clue_overlap(["Her brows are furrowed and her lips pressed tight. So she is angry."],
                       ["She frowns with tightened lips. The weather is sunny."], method="minilm")
    assert out["method"] == "minilm"
    assert out["recall"] == 1.0 and out["precision"] == 0.5
