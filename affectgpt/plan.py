"""Constants and the token plan shared by data, model, inference and export (torch-free).

The token plan says how many modality tokens a clip gets and how its frames are prepared; it is what
the data loaders need from the model, so it lives below both.
"""

from __future__ import annotations

from dataclasses import dataclass

IGNORE_INDEX = -100  # label of positions that are not trained on (the prompt, padding, modality tokens)
SAMPLE_RATE = 16000  # Hz: every waveform is resampled to this (Whisper's rate)
WHISPER_FRAME_SAMPLES = 320  # samples per Whisper encoder output frame (hop 160, conv stride 2): 20 ms
ENCODER_FRAMES_PER_SECOND = SAMPLE_RATE // WHISPER_FRAME_SAMPLES
MODALITY_TOKENS = {"video": "<|video_pad|>", "audio": "<|audio_pad|>", "fusion": "<|fusion_pad|>"}
TASKS = ("describe", "labels")  # the two instruction tasks (AffectGPT's hybrid training)
DTYPES = ("float32", "bfloat16", "float16")
VISUAL_INPUTS = ("frames", "faces")  # data.visual: video frames, or OpenFace face crops (the released model's input)
DEFAULT_GENERATION = {"max_new_tokens": 256, "do_sample": False, "temperature": 1.0, "top_p": 1.0, "num_beams": 1}


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

    def audio_tokens(self, num_samples: int) -> int:
        n = min(num_samples, self.audio_max_samples)
        frames = max(1, -(-n // WHISPER_FRAME_SAMPLES))
        if self.audio_kind != "qformer":
            return self.audio_fixed_tokens
        windows = 1 if frames <= self.audio_window else -(-(frames - self.audio_window) // self.audio_stride) + 1
        return windows * self.audio_queries_per_window
