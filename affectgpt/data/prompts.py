"""Prompts: a sample + task → chat messages with modality placeholders, and the target text.

The prompt goes through the tokenizer's own chat template (``render_prompt``). Modality tokens are runs of one
placeholder token each (see ``affectgpt.model.tokenizer.MODALITY_TOKENS``); the model swaps
their embeddings for adapter outputs. A clip without audio (or video) says so in words and has
no placeholder for it.
"""

from __future__ import annotations

import random

from jinja2 import TemplateError

from affectgpt.core.config import check_choice
from affectgpt.core.plan import MODALITY_TOKENS, OFFICIAL_MODALITY_TOKENS, TASKS

SYSTEM_PROMPT = "You are AffectGPT, an expert in multimodal emotion recognition."
QUESTIONS = {
    "describe": "Please infer the person's emotional state and provide your reasoning process.",
    "labels": "Please recognize all possible emotional states of the character.",
}


def join_emotions(emotions: list[str] | tuple[str, ...]) -> str:
    """["a"] → "a"; ["a","b"] → "a and b"; ["a","b","c"] → "a, b and c"."""
    words = [e.strip() for e in emotions if e.strip()]
    if not words:
        return "neutral"
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " and " + words[-1]


def labels_target(emotions, style: str = "chat") -> str:
    """The labels answer; the ``official`` style joins every label with ", " (the released model's)."""
    if style == "official":
        words = [e.strip() for e in emotions if e.strip()]
        return f"The character's emotional state is {', '.join(words) if words else 'neutral'}."
    return f"The character's emotional state is {join_emotions(emotions)}."


def target_text(task: str, description: str | None, emotions, style: str = "chat") -> str:
    """The assistant's answer for a task. Raises ValueError when the sample lacks what the task needs."""
    if task == "describe":
        if not description:
            raise ValueError("task 'describe' needs a description")
        return description.strip()
    if task == "labels":
        if emotions is None:
            raise ValueError("task 'labels' needs emotions")
        return labels_target(emotions, style)
    check_choice("task", task, TASKS)
    raise AssertionError(task)  # unreachable: the tasks are handled above


# ----------------------------------------------------------------------------- the released format
# No system prompt, no chat template: "###Human: <sentences> {question} ###Assistant: " (one trailing
# space); the answer is trained as answer + "###" + eos, with bos (<|im_start|>) first in training only.
OFFICIAL_TARGET_END = "###"
OFFICIAL_VISUAL_SENTENCE = {
    "faces": "Meanwhile, we uniformly sample raw frames from the video and extract faces from these frames: "
             "<Video>{}</Video>. ",
    "frames": "Meanwhile, we uniformly sample raw frames from the video: <Video>{}</Video>. ",
}


def official_prompt(subtitle: str, task: str, n_video: int, n_audio: int, n_fusion: int = 0,
                    visual: str = "frames") -> str:
    """The released AffectGPT's prompt text: Multi, Audio, then Face/Frame placeholders, the subtitle
    (verbatim, empty allowed), the question. A modality the clip lacks has no sentence."""
    check_choice("task", task, TASKS)
    if visual not in OFFICIAL_VISUAL_SENTENCE:
        raise ValueError(f"visual must be one of {sorted(OFFICIAL_VISUAL_SENTENCE)}, got {visual!r}")
    t = OFFICIAL_MODALITY_TOKENS
    parts = ["###Human: "]
    if n_fusion:
        parts.append(f"The audio and video merged info is: <Multi>{t['fusion'] * n_fusion}</Multi>. ")
    if n_audio:
        parts.append(f"The audio content is as follows: <Audio>{t['audio'] * n_audio}</Audio>. ")
    if n_video:
        parts.append(OFFICIAL_VISUAL_SENTENCE[visual].format(t[visual] * n_video))
    parts.append(f"The subtitle of this video is: <Subtitle>{subtitle}</Subtitle>. ")
    parts.append(f"Now, please answer my question based on all the provided information. {QUESTIONS[task]} ")
    parts.append("###Assistant: ")
    return "".join(parts)


def clean_answer(text: str, style: str = "chat") -> str:
    """A decoded answer as the style's users read it: ``official`` keeps the text before the last
    "###" and after the last "Assistant:" (the released post-processing); both strip spaces."""
    if style == "official":
        text = text.rsplit(OFFICIAL_TARGET_END, 1)[0]
        text = text.rsplit("Assistant:", 1)[-1]
    return text.strip()


def user_message(subtitle: str, task: str, n_video: int, n_audio: int, n_fusion: int = 0) -> str:
    parts = []
    if n_fusion:
        parts.append("Multimodal summary: " + MODALITY_TOKENS["fusion"] * n_fusion)
    parts.append("Audio: " + MODALITY_TOKENS["audio"] * n_audio if n_audio else "Audio: this clip has no audio.")
    parts.append("Video: " + MODALITY_TOKENS["video"] * n_video if n_video else "Video: this clip has no video.")
    sub = subtitle.strip()
    parts.append(
        f"The subtitle of this video is: <Subtitle>{sub}</Subtitle>." if sub else "This video has no subtitle."
    )
    parts.append(QUESTIONS[task])
    return "\n".join(parts)


def build_messages(subtitle: str, task: str, n_video: int, n_audio: int, n_fusion: int = 0,
                   system: str | None = SYSTEM_PROMPT) -> list[dict]:
    check_choice("task", task, TASKS)
    msgs = [{"role": "system", "content": system}] if system else []
    msgs.append({"role": "user", "content": user_message(subtitle, task, n_video, n_audio, n_fusion)})
    return msgs


def render_prompt(tok, messages: list[dict]) -> str:
    """The prompt text through the tokenizer's own chat template, ending with the assistant turn's
    opening (``add_generation_prompt``; reasoning templates get ``enable_thinking=False``, so Qwen3
    answers directly). A template that refuses a system message (Gemma 2, Mistral v0.1 raise) or
    silently drops it (Phi-3-mini's original) gets the system text merged into the first user turn."""
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else None
    try:
        text = _render(tok, messages)
        if system is None or system in text:
            return text
    except TemplateError:
        if system is None:
            raise
    return _render(tok, merge_system(messages))


def _render(tok, messages: list[dict]) -> str:
    return tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False, enable_thinking=False)


def merge_system(messages: list[dict]) -> list[dict]:
    """The system message's text put before the first user message's (blank line between)."""
    system, rest = messages[0]["content"], [dict(m) for m in messages[1:]]
    if not rest or rest[0]["role"] != "user":
        raise ValueError("a system message can only be merged into a following user message")
    rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
    return rest


def pick_task(
    describe_ratio: float, seed: int, epoch: int, index: int, has_description: bool, has_emotions: bool
) -> str:
    """AffectGPT's hybrid training: 'describe' with probability describe_ratio, else 'labels';
    deterministic in (seed, epoch, index); falls back to the task the sample supports."""
    if not has_description:
        return "labels"
    if not has_emotions:
        return "describe"
    return "describe" if random.Random(f"{seed}:{epoch}:{index}").random() < describe_ratio else "labels"


_TURN_PROBE = "AffectGPT-end-of-turn-probe"


def end_of_turn_id(tok) -> int:
    """The token the chat template closes an assistant turn with (``<|im_end|>``, ``<|eot_id|>``,
    ``<end_of_turn>``, ``<|end|>``, ``</s>``): the first token after an assistant message's text in
    the template's own rendering; the tokenizer's eos when the template closes turns with plain text."""
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": _TURN_PROBE}]
    text = tok.apply_chat_template(msgs, tokenize=False, enable_thinking=False)
    if _TURN_PROBE not in text:
        raise ValueError(f"the tokenizer's chat template drops assistant messages; rendered {text[:200]!r}")
    after = tok(text.split(_TURN_PROBE, 1)[1], add_special_tokens=False).input_ids
    special = set(tok.all_special_ids) | {int(i) for i in tok.added_tokens_decoder}
    if after and after[0] in special:
        return after[0]
    if tok.eos_token_id is None:
        raise ValueError("the chat template ends assistant turns without a special token and the tokenizer has no eos")
    return tok.eos_token_id
