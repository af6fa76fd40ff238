"""Prompts: placeholders per modality, no dangling placeholder for a missing one, the two tasks,
the hybrid task pick, rendering through a real chat template (the ending's parser: test_emotion_list.py)."""

import pytest

from affectgpt.data.prompts import (
    QUESTIONS,
    build_messages,
    join_emotions,
    labels_target,
    pick_task,
    target_text,
    user_message,
)
from affectgpt.model.tokenizer import MODALITY_TOKENS

V, A, F = MODALITY_TOKENS["video"], MODALITY_TOKENS["audio"], MODALITY_TOKENS["fusion"]


def test_placeholders_follow_the_official_order_fusion_audio_video_subtitle_question():
    msg = user_message("I'm fine.", "describe", n_video=2, n_audio=3, n_fusion=1)
    assert msg.count(V) == 2 and msg.count(A) == 3 and msg.count(F) == 1
    order = [F, A, V, "<Subtitle>I'm fine.</Subtitle>", QUESTIONS["describe"]]
    assert [msg.index(x) for x in order] == sorted(msg.index(x) for x in order)


@pytest.mark.parametrize("n_video,n_audio,says", [(0, 4, "this clip has no video"), (8, 0, "this clip has no audio")])
def test_a_missing_modality_is_said_in_words_without_placeholders(n_video, n_audio, says):
    msg = user_message("", "labels", n_video, n_audio)
    assert says in msg and "This video has no subtitle." in msg
    assert msg.count(V) == n_video and msg.count(A) == n_audio and F not in msg
    assert msg.endswith(QUESTIONS["labels"])


def test_targets_and_tasks():
    assert join_emotions(["happy"]) == "happy" and join_emotions(["a", "b", "c"]) == "a, b and c"
    assert labels_target([]) == "The character's emotional state is neutral."
    assert target_text("labels", None, ["sad", "tired"]) == "The character's emotional state is sad and tired."
    with pytest.raises(ValueError, match="needs a description"):
        target_text("describe", "", ["sad"])
    with pytest.raises(ValueError, match="unknown task"):
        build_messages("x", "summarise", 1, 1)
    msgs = build_messages("x", "labels", 1, 1, system=None)
    assert [m["role"] for m in msgs] == ["user"]


def test_hybrid_task_pick_is_deterministic_and_follows_the_ratio():
    picks = [pick_task(0.3, seed=5, epoch=0, index=i, has_description=True, has_emotions=True) for i in range(2000)]
    assert picks == [pick_task(0.3, 5, 0, i, True, True) for i in range(2000)]
    assert 0.26 < picks.count("describe") / 2000 < 0.34
    assert pick_task(1.0, 0, 0, 0, has_description=False, has_emotions=True) == "labels"
    assert pick_task(0.0, 0, 0, 0, has_description=True, has_emotions=False) == "describe"


def test_rendered_through_the_qwen_chat_template():
    from affectgpt.model.tokenizer import BUILTIN_QWEN25, load_tokenizer

    tok = load_tokenizer(BUILTIN_QWEN25)
    msgs = build_messages("Hi.", "labels", n_video=1, n_audio=2, n_fusion=1)
    text = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    assert text == ("<|im_start|>system\n" + msgs[0]["content"] + "<|im_end|>\n<|im_start|>user\n" + msgs[1]["content"]
                    + "<|im_end|>\n<|im_start|>assistant\n")
    ids = tok(text, add_special_tokens=False).input_ids
    assert ids.count(tok.convert_tokens_to_ids(A)) == 2 and ids.count(tok.convert_tokens_to_ids(V)) == 1
    assert ids.count(tok.convert_tokens_to_ids(F)) == 1
