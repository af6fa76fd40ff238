"""Constants and the token plan shared by data, model, inference and export (torch-free).

The token plan says how many modality tokens a clip gets and how its frames are prepared; it is what
the data loaders need from the model, so it lives below both.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

IGNORE_INDEX = -100  # label of positions that are not trained on (the prompt, padding, modality tokens)
SAMPLE_RATE = 16000  # Hz: every waveform is resampled to this (Whisper's rate)
WHISPER_FRAME_SAMPLES = 320  # samples per Whisper encoder output frame (hop 160, conv stride 2): 20 ms
ENCODER_FRAMES_PER_SECOND = SAMPLE_RATE // WHISPER_FRAME_SAMPLES
MODALITY_TOKENS = {"video": "<|video_pad|>", "audio": "<|audio_pad|>", "fusion": "<|fusion_pad|>"}
# The released AffectGPT's placeholders, added in its order (ids 151665..151669 on Qwen2.5's vocabulary).
OFFICIAL_PLACEHOLDERS = ("<ImageHere>", "<AudioHere>", "<FrameHere>", "<FaceHere>", "<MultiHere>")
OFFICIAL_MODALITY_TOKENS = {"frames": "<FrameHere>", "faces": "<FaceHere>", "audio": "<AudioHere>",
                            "fusion": "<MultiHere>"}
PROMPT_STYLES = ("chat", "official")  # model.prompt: the tokenizer's chat template | the released ###Human: format
TASKS = ("describe", "labels")  # the two instruction tasks (AffectGPT's hybrid training)
DTYPES = ("float32", "bfloat16", "float16")
VISUAL_INPUTS = ("frames", "faces")  # data.visual: video frames, or OpenFace face crops (the released model's input)
DEFAULT_GENERATION = {"max_new_tokens": 256, "do_sample": False, "temperature": 1.0, "top_p": 1.0, "num_beams": 1,
                      "top_k": None, "stop_strings": None, "repetition_penalty": None}
# decoding=NAME everywhere a model generates (infer.py, python -m affectgpt.apps.bench). "official": how the released
# AffectGPT was evaluated: sampling at T 1, top-p 0.9, top-k 20 (Qwen2.5-7B-Instruct's generation_config), up to
# 1,200 new tokens, no repetition penalty (passed as 1.0 over the 7B's generation_config 1.05), stopping at "###"
# (besides end-of-turn and EOS, which always stop).
GENERATION_PRESETS = {
    "greedy": dict(DEFAULT_GENERATION),
    "official": {"max_new_tokens": 1200, "do_sample": True, "temperature": 1.0, "top_p": 0.9, "num_beams": 1,
                 "top_k": 20, "stop_strings": ["###"], "repetition_penalty": 1.0},
}


@dataclass(frozen=True)
class TokenPlan:
    """How many modality tokens a clip gets and how its frames are prepared; picklable, so
    data-loader workers build prompts without the model."""

    video_tokens: int
    fusion_tokens: int
    image_size: tuple[int, int]
    interpolation: str
    resize_mode: str
    frames: int
    audio_kind: str
    audio_window: int  # encoder frames per window
    audio_stride: int
    audio_queries_per_window: int
    audio_fixed_tokens: int  # attention/mean pooling
    audio_max_samples: int  # after the long-audio policy
    has_vision: bool = True
    has_audio: bool = True
    prompt_style: str = "chat"  # chat | official (see PROMPT_STYLES)
    frame_sampling: str = "centre"  # centre | index (floor(k*N/frames), the released model's)

    def audio_tokens(self, num_samples: int) -> int:
        n = min(num_samples, self.audio_max_samples)
        frames = max(1, -(-n // WHISPER_FRAME_SAMPLES))
        if self.audio_kind != "qformer":
            return self.audio_fixed_tokens
        windows = 1 if frames <= self.audio_window else -(-(frames - self.audio_window) // self.audio_stride) + 1
        return windows * self.audio_queries_per_window


def options_block(cls, node, where: str):
    """A settings dataclass ``cls`` from a command's ``where:`` block (an OmegaConf node, a dict or None for
    the defaults); unknown keys are an error naming the block."""
    items = dict(node.items()) if node is not None else {}
    known = {f.name for f in fields(cls)}
    if set(items) - known:
        raise ValueError(f"{where}: unknown keys {sorted(set(items) - known)}; expected some of {sorted(known)}")
    return cls(**items)
