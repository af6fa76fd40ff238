"""The language model: any ``AutoModelForCausalLM``, base weights frozen, LoRA through peft."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class LoraSettings:
    enabled: bool = True
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: list(ALL_LINEAR))
    # Extra base modules trained in full and saved with the adapter (peft modules_to_save),
    # e.g. ["norm"] for the final norm of a randomly initialised tiny LLM.
    modules_to_save: list[str] = field(default_factory=list)


@dataclass
class LLMConfig:
    name_or_path: str = "Qwen/Qwen2.5-7B-Instruct"
    tokenizer: str | None = None  # defaults to name_or_path
    dtype: str = "bfloat16"
    attn_implementation: str = "sdpa"
    gradient_checkpointing: bool = False
    trust_remote_code: bool = False
    lora: LoraSettings = field(default_factory=LoraSettings)


def torch_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; expected one of {sorted(DTYPES)}")
    return DTYPES[name]


def resolve_attn_implementation(requested: str) -> str:
    """flash_attention_2 when asked for and installed; otherwise the request (sdpa by default)."""
    if requested == "flash_attention_2":
        try:
            import flash_attn  # noqa: F401
        except ImportError as e:
            raise ValueError("attn_implementation=flash_attention_2 needs the flash-attn package") from e
    return requested


def load_base_llm(cfg: LLMConfig, device: str | torch.device = "cpu"):
    """Load the causal LM strictly (transformers raises on missing weights; we re-check below)."""
    from transformers import AutoModelForCausalLM

    model, info = AutoModelForCausalLM.from_pretrained(
        cfg.name_or_path,
        dtype=torch_dtype(cfg.dtype),
        attn_implementation=resolve_attn_implementation(cfg.attn_implementation),
        trust_remote_code=cfg.trust_remote_code,
        output_loading_info=True,
        device_map={"": device} if str(device) != "cpu" else None,
    )
    missing = [k for k in info.get("missing_keys", []) if "rotary" not in k]
    unexpected = list(info.get("unexpected_keys", []))
    mismatched = list(info.get("mismatched_keys", []))
    if missing or unexpected or mismatched:
        raise RuntimeError(
            f"{cfg.name_or_path}: checkpoint does not match the model: missing={missing[:20]} "
            f"unexpected={unexpected[:20]} mismatched={mismatched[:20]}"
        )
    return model


def wrap_lora(model, lora: LoraSettings, gradient_checkpointing: bool = False):
    """Freeze the base model and add LoRA (plus modules_to_save). Returns the peft model."""
    model.requires_grad_(False)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if not lora.enabled:
        return model
    from peft import LoraConfig, get_peft_model

    pcfg = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        modules_to_save=list(lora.modules_to_save) or None,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, pcfg)
