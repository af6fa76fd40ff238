"""The model's configuration (Hydra's ``model`` group, conf/model/*.yaml): plain dataclasses, torch-free.

One source of truth: the model layer builds from these classes (``affectgpt.model.build.model_config``)
and :mod:`affectgpt.core.config` types the ``model`` group with :class:`ModelSchema`, so a key or a
type the builder does not take is refused while the command line is composed. Options OmegaConf
cannot type (a union of kinds) are ``Any``; the builder checks their values.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

AUTO_TARGETS = "auto"


@dataclass
class VisionConfig:
    kind: str = "open_clip"  # open_clip | hf_clip (transformers CLIPModel.get_image_features, output pooled)
    model: str = "ViT-L-14-quickgelu"  # open_clip model name (its shipped config), or "local-dir:/path"; hf_clip:
    # a transformers CLIP folder or hub name (openai/clip-vit-large-patch14)
    pretrained: str | None = "openai"  # tag, local .pt/.safetensors file, or None (random init)
    output: str = "pooled"  # "tokens": patch tokens per frame; "pooled": one projected embedding per frame
    frames: int = 8
    dtype: str = "float32"  # frozen tower's weights; features are cast to the adapters' dtype
    interpolation: str | None = None  # null: the encoder's own (open_clip's preprocess config; hf_clip: bicubic)
    resize_mode: str | None = None  # null: the encoder's own; squash: straight to image_size (no crop)
    frame_sampling: str = "centre"  # centre: frame shown at each segment's centre | index: frame floor(k*N/frames)
    architecture: str | None = None  # hf_clip random builds: affectgpt/model/architectures/<name>.json


@dataclass
class AudioConfig:
    kind: str = "whisper"  # whisper | hubert (transformers HubertModel on 8 fixed 2-s clips, the released model's)
    model: str = "large-v3"  # whisper name (downloads to ~/.cache/whisper) or a local .pt with dims + model_state_dict;
    # hubert: a transformers folder or hub name (TencentGameMate/chinese-hubert-large)
    pad_to_30s: bool = True  # the encoder's native input; False crops the positional embedding (faster, different)
    long_audio: str = "chunk"  # audio > 30 s: "chunk" (encode each 30 s piece, concatenate) or "truncate"
    max_seconds: float = 120.0  # hard cap after which audio is truncated in either policy
    # Stored dims (affectgpt/model/architectures/whisper-<size>.json or a .json path): random
    # weights are built from it; real weights must match it. None: the checkpoint's own dims.
    architecture: str | None = None
    dtype: str = "float32"
    clips: int = 8  # hubert: clips per waveform
    clip_seconds: float = 2.0  # hubert: length of each clip
    last_layers: int = 4  # hubert: the feature is the mean of the last hidden states, then over time


@dataclass
class AdapterConfig:
    kind: str = "qformer"  # qformer | attention | mean | score
    num_query_tokens: int = 32  # video qformer / attention pooling
    hidden_size: int = 768
    num_layers: int = 2
    num_heads: int = 12
    intermediate_size: int = 3072
    max_frames: int = 64  # frame-position table size (video)
    frame_position: bool = True  # video: learned frame-position embeddings (the released model has none)
    window_seconds: float = 2.0  # audio
    stride_seconds: float = 2.0  # audio
    queries_per_window: int = 1  # audio
    standardize: bool = False  # fixed training-set feature statistics before the adapter
    trainable: bool = True
    dropout: float = 0.1  # Q-Former hidden and attention dropout (BLIP-2's value); attention/mean pooling have none


@dataclass
class LoraSettings:
    enabled: bool = True
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    # "auto": every linear layer of the decoder blocks, found by module type (q/k/v/o + MLP for
    # Llama/Qwen/Gemma/Mistral, qkv_proj + gate_up_proj for Phi-3, c_attn/c_fc for GPT-2); or a list of names.
    target_modules: Any = AUTO_TARGETS  # list[str] | str: OmegaConf 2.3 types no such union
    # Extra base modules trained in full and saved with the adapter (peft modules_to_save),
    # e.g. ["model.norm"] for the final norm of the randomly initialised tiny LLM only.
    modules_to_save: list[str] = field(default_factory=list)


@dataclass
class LLMConfig:
    name_or_path: str = "Qwen/Qwen2.5-7B-Instruct"
    tokenizer: str | None = None  # defaults to name_or_path
    dtype: str = "bfloat16"
    attn_implementation: str = "sdpa"  # sdpa | eager | flash_attention_2 | auto (fa2 on CUDA when installed, else
    # sdpa where the family supports it, else eager)
    # false | true (= full: recompute whole decoder blocks) | mlp (recompute only the MLP: its
    # 3 x intermediate-width activations are most of a block's memory, its FLOPs a smaller share)
    gradient_checkpointing: Any = False  # bool | str: OmegaConf 2.3 types no such union
    checkpoint_every: int = 1  # checkpoint every k-th decoder block (1: all; 2: every other one)
    kernels: str = "none"  # none | liger (fused RMSNorm, SwiGLU, RoPE and linear cross-entropy; CUDA + Triton)
    trust_remote_code: bool = False
    # Stored architecture (affectgpt/model/architectures/<name>.json or a .json path): random
    # weights are built from it; real weights must match it. None: the checkpoint's own config.
    architecture: str | None = None
    lora: LoraSettings = field(default_factory=LoraSettings)


@dataclass
class ModelConfig:
    """What ``AffectGPT`` is built from."""
    vision: VisionConfig | None = field(default_factory=VisionConfig)
    audio: AudioConfig | None = field(default_factory=AudioConfig)
    video_adapter: AdapterConfig = field(default_factory=AdapterConfig)
    audio_adapter: AdapterConfig = field(default_factory=lambda: AdapterConfig(num_query_tokens=1))
    fusion: bool = False
    fusion_dim: int = 1024
    fusion_trainable: bool = True
    fusion_weight: str = "mlp"  # mlp (GELU, softmax) | linear (the released model's: two linears, raw weights)
    prompt: str = "chat"  # chat: the tokenizer's chat template | official: the released ###Human: format
    llm: LLMConfig = field(default_factory=LLMConfig)
    init: str = "pretrained"  # pretrained: load every frozen weight; random: build from the architectures only


@dataclass
class ModelSchema(ModelConfig):
    """conf/model/*.yaml: a ModelConfig plus what names it and makes the tiny model's local assets."""
    name: str = "model"
    tiny_assets: str | None = None           # the tiny model: its random "pretrained" weights are written here
    tiny_seed: int = 1234
    tiny_tokenizer: str = "bpe"              # bpe | qwen2.5
    tiny_corpus: str | None = None           # the manifest the tiny BPE is trained on
    tiny_llm_lora: dict[str, Any] | None = None  # llm.lora settings only while llm is the tiny random LLM


META_KEYS = frozenset({f.name for f in fields(ModelSchema)} - {f.name for f in fields(ModelConfig)})
