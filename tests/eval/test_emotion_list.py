"""The one parser of the emotion list (affectgpt.eval.extract.parse_emotion_list): truncated
generations, two endings, trailing text; inference rows, training-time F1 and the scorer read a
text the same way."""

import pytest

from affectgpt.data.prompts import labels_target
from affectgpt.eval import extract_emotions, score
from affectgpt.eval.extract import parse_emotion_list

BODY = "He frowns and looks nervous. "
ENDING = "Therefore, the person's emotional state is "


def test_a_complete_ending_and_the_training_targets_round_trip():
    assert parse_emotion_list(BODY + ENDING + "Anxious, a bit sad and frustrated.") == ["anxious", "sad", "frustrated"]
    for emotions in (["happy"], ["surprised", "happy"], ["angry", "disgusted", "contemptuous"], []):
        assert parse_emotion_list(labels_target(emotions)) == (emotions or ["neutral"])


def test_a_generation_cut_mid_list_drops_only_the_cut_word():
    assert parse_emotion_list(BODY + ENDING + "anxious, frustr") == ["anxious"]  # "frustr" is no word
    assert parse_emotion_list(BODY + ENDING + "anxious and sad") == ["anxious", "sad"]  # cut after whole words
    assert parse_emotion_list(BODY + ENDING + "anxious, sad and") == ["anxious", "sad"]  # cut at a separator
    # the cut list has no whole item left: no ending, so the body is scanned
    assert parse_emotion_list(BODY + ENDING + "frustr") is None
    assert extract_emotions(BODY + ENDING + "frustr") == ["nervous"]


def test_a_generation_cut_before_the_list_falls_back_to_the_scan():
    for cut in (ENDING, ENDING.rstrip(), "Therefore, the pers"):
        assert parse_emotion_list(BODY + cut) is None, cut
        assert extract_emotions(BODY + cut) == ["nervous"], cut
    assert parse_emotion_list("") is None and extract_emotions("") == []


def test_two_endings_the_last_one_counts():
    text = "At first her emotional state is calm. Later... Therefore, the emotional state is Anxious, sad and tired."
    assert parse_emotion_list(text) == ["anxious", "sad", "tired"]
    # the model ran on and was cut inside its second ending: no whole label there, the scan reads both
    text = "Her emotional state is happy. Her emotional state is ha"
    assert parse_emotion_list(text) is None and extract_emotions(text) == ["happy"]


def test_trailing_text_after_the_list_is_no_ending_and_the_scan_reads_the_concluding_sentence():
    text = BODY + ENDING + "anxious and sad. He then leaves the room."
    assert parse_emotion_list(text) is None
    assert extract_emotions(text) == ["anxious", "sad", "nervous"]  # concluding sentence 1.0 each, body 0.5
    # a mid-text "emotional state is ..." describes, it does not conclude (real EMER descriptions do this)
    text = "Her emotional state is escalating further. In the end she smiles happily."
    assert parse_emotion_list(text) is None and extract_emotions(text) == ["happily"]
    # a new line ends the sentence as a full stop does
    assert parse_emotion_list(ENDING + "happy and relieved.\nNote: the audio is quiet") is None
    assert parse_emotion_list("Note: the audio is quiet.\n" + ENDING + "happy and relieved") == ["happy", "relieved"]


TEXTS = [
    BODY + ENDING + "anxious, frustr",
    BODY + ENDING + "anxious, sad and",
    BODY + ENDING,
    "Her emotional state is happy. Her emotional state is ha",
    BODY + ENDING + "anxious and sad. He then leaves the room.",
    "She is not angry. She seems calm.",
    labels_target(["worried", "sad"]),
    "",
]


def test_inference_rows_training_f1_and_the_scorer_read_the_same_labels():
    from affectgpt.data.manifest import Sample
    from affectgpt.recipe.telemetry import evaluate_predictions
    from affectgpt.runtime.inference import rows_for

    names = [f"clip{i}" for i in range(len(TEXTS))]
    rows = rows_for({"bad": [], "names": names}, TEXTS, "describe")  # what predict() writes
    assert [r["emotions"] for r in rows] == [extract_emotions(t) for t in TEXTS]
    assert [r["emotions"] for r in rows][:2] == [["anxious"], ["anxious", "sad"]]
    gold_emotions = [["anxious"], ["sad"], ["nervous"], ["happy"], ["sad", "anxious"], ["calm"], ["worried"], ["calm"]]
    samples = [Sample(name=n, video=None, audio=None, subtitle="", emotions=g)
               for n, g in zip(names, gold_emotions, strict=True)]
    golds = [{"name": s.name, "emotions": s.emotions} for s in samples]
    training = evaluate_predictions(rows, samples)  # training-time metrics.json: rows carry "emotions"
    scorer = score([{"name": r["name"], "description": r["description"]} for r in rows], golds)  # from text
    assert scorer["extraction"]["from_description"] == len(TEXTS) - 1  # the empty text has nothing to extract
    assert training["scorer"]["label"] == scorer["label"]
    # exact-match F1 by hand, per text: P = hits / predicted, R = hits / gold, averaged over the 8
    p, r = (1 + 1 / 2 + 1 + 1 + 2 / 3 + 1 + 1 / 2 + 0) / 8, (1 + 1 + 1 + 1 + 1 + 1 + 1 + 0) / 8
    assert training["exact"]["precision"] == pytest.approx(p) and training["exact"]["recall"] == pytest.approx(r)
    assert training["exact"]["f1"] == pytest.approx(2 * p * r / (p + r))
