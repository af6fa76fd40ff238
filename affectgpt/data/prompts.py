"""Prompts: a sample + task → chat messages with modality placeholders, and the target text.

The prompt goes through the tokenizer's own chat template. Modality tokens are runs of one
placeholder token each (see ``affectgpt.model.tokenizer.MODALITY_TOKENS``); the model swaps
their embeddings for adapter outputs. A clip without audio (or video) says so in words and has
no placeholder for it.
"""

from __future__ import annotations

import random

from ..model.tokenizer import MODALITY_TOKENS

TASKS = ("describe", "labels")
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


def labels_target(emotions) -> str:
    return f"The character's emotional state is {join_emotions(emotions)}."


def target_text(task: str, description: str | None, emotions) -> str:
    """The assistant's answer for a task. Raises ValueError when the sample lacks what the task needs."""
    if task == "describe":
        if not description:
            raise ValueError("task 'describe' needs a description")
        return description.strip()
    if task == "labels":
        if emotions is None:
            raise ValueError("task 'labels' needs emotions")
        return labels_target(emotions)
    raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")


def user_message(subtitle: str, task: str, n_video: int, n_audio: int, n_fusion: int = 0) -> str:
    parts = []
    if n_fusion:
        parts.append("Multimodal summary: " + MODALITY_TOKENS["fusion"] * n_fusion)
    parts.append("Audio: " + MODALITY_TOKENS["audio"] * n_audio if n_audio else "Audio: this clip has no audio.")
    parts.append("Video: " + MODALITY_TOKENS["video"] * n_video if n_video else "Video: this clip has no video.")
    sub = subtitle.strip()
    parts.append(f"The subtitle of this video is: <Subtitle>{sub}</Subtitle>." if sub else "This video has no subtitle.")
    parts.append(QUESTIONS[task])
    return "\n".join(parts)


def build_messages(subtitle: str, task: str, n_video: int, n_audio: int, n_fusion: int = 0,
                   system: str | None = SYSTEM_PROMPT) -> list[dict]:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    msgs = [{"role": "system", "content": system}] if system else []
    msgs.append({"role": "user", "content": user_message(subtitle, task, n_video, n_audio, n_fusion)})
    return msgs


def pick_task(describe_ratio: float, seed: int, epoch: int, index: int, has_description: bool, has_emotions: bool) -> str:
    """AffectGPT's hybrid training: 'describe' with probability describe_ratio, else 'labels';
    deterministic in (seed, epoch, index); falls back to the task the sample supports."""
    if not has_description:
        return "labels"
    if not has_emotions:
        return "describe"
    return "describe" if random.Random(f"{seed}:{epoch}:{index}").random() < describe_ratio else "labels"

