"""Rules extractor: structured ending, lexicon scan, negation, hedges, quotes; real-data check when present."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from affectgpt.eval import extract_emotions, read_records, score
from affectgpt.eval.extract import parse_emotion_list, scan_emotions

REF = Path(os.environ.get("AFFECTGPT_REFERENCE_DIR", Path(__file__).resolve().parents[3] / "shared" / "reference"))


def test_structured_ending():
    text = "He frowns and sighs. Therefore, the person's emotional state is happy, anxious and frustrated."
    assert extract_emotions(text) == ["happy", "anxious", "frustrated"]
    assert extract_emotions("It is inferred that his emotional state is anger.") == ["anger"]
    # a repeated label counts once
    assert parse_emotion_list("Her emotional state is a bit sad, sad or Worried!") == ["sad", "worried"]
    # open vocabulary: an unknown word is kept as written, the scorer drops it later
    assert extract_emotions("So the emotional state is flibbertigibbet.") == ["flibbertigibbet"]
    # only the last sentence counts as the structured ending
    assert parse_emotion_list("Her emotional state is calm. Then she shouts angrily.") is None


def test_scan_negation_hedges_and_quotes():
    assert extract_emotions("") == [] and extract_emotions("   ") == []
    assert extract_emotions("The man walks into the room and sits down.") == []  # neutral text
    assert extract_emotions("She is not angry. She seems calm.") == ["calm"]
    # negation scope: the clause; 'absence of X or Y' negates both
    assert extract_emotions("With an absence of nervousness or unease, she smiles happily.") == ["happily"]
    # a hedge lowers the weight (0.6) but keeps the word when it clears the threshold; order = score
    assert extract_emotions("He is angry, with a hint of sadness.") == ["angry", "sadness"]
    # a quoted subtitle is not the person's described emotion
    assert extract_emotions('The subtitle says "I am so happy". He frowns angrily.') == ["angrily"]
    # body mentions weigh 0.5, the concluding sentence 1.0; words under 0.3 x best are dropped
    assert scan_emotions("In the video he looks nervous. Therefore he is angry.") == ["angry", "nervous"]
    # repeated mentions add up (furious 2.0); hedged body mention 0.5 x 0.6 = 0.3 < 0.3 x 2.0: dropped
    text = "In the video he looks slightly nervous. Therefore he is furious and furious and angry."
    assert scan_emotions(text) == ["furious", "angry"]


def test_score_extracts_from_descriptions():
    golds = [{"name": "a", "emotions": ["angry"]}, {"name": "b", "emotions": ["happy"]}]
    preds = [{"name": "a", "description": "Therefore, the person's emotional state is angry."},
             {"name": "b", "description": "Nothing is said here."}]
    out = score(preds, golds)
    assert out["extraction"] == {"from_description": 2, "empty": 1}
    assert out["label"]["M1"]["precision"] == pytest.approx(0.5)


@pytest.mark.skipif(not (REF / "emer" / "emer_v2_final-EMER-reason.jsonl").is_file(), reason="no reference data")
def test_rules_extraction_on_emer_v2_reaches_the_target():
    gold = read_records(REF / "ovmer" / "gt" / "mer2024_check-openset.jsonl")
    rows = [json.loads(line) for line in open(REF / "emer" / "emer_v2_final-EMER-reason.jsonl")]
    preds = [{"name": r["name"], "description": r["english"]} for r in rows]
    out = score(preds, gold, wheels=REF / "ovmer" / "official_emotion_wheel")
    assert len(preds) == 332 and out["extraction"]["from_description"] == 332
    assert out["label"]["m_avg_f1"] >= 0.65, out["label"]["m_avg_f1"]
