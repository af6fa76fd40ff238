"""The language model: any ``AutoModelForCausalLM``, base weights frozen, LoRA through peft.

Family-neutral: LoRA targets are found by module type (``lora_target_modules``), rows added for
placeholder tokens keep a tied embedding tied and are held by ``AddedTokenRows`` (saved and
restored with the trainable weights), and ``output_logits`` applies the family's own final
logit transform (Gemma 2's soft-capping) so the training loss sees the logits generation sees.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import AutoConfig, AutoModelForCausalLM
from transformers.pytorch_utils import Conv1D
from transformers.utils import cached_file

from affectgpt.core.config import check_choice
from affectgpt.core.model_config import AUTO_TARGETS, LLMConfig, LoraSettings
from affectgpt.model.architecture import architecture_path, check_architecture, load_architecture

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


def torch_dtype(name: str) -> torch.dtype:
    check_choice("dtype", name, sorted(DTYPES))
    return DTYPES[name]


def resolve_attn_implementation(requested: str, device: str | torch.device = "cpu") -> str | None:
    """``auto``: flash_attention_2 when flash-attn is installed and the model runs on CUDA, else
    None: transformers' own choice, sdpa where the family supports it and eager where not (Gemma 2).
    An explicit flash_attention_2 without the package is an error, not a silent fallback."""
    if requested == "auto":
        fa2 = importlib.util.find_spec("flash_attn") and str(device).startswith("cuda")
        return "flash_attention_2" if fa2 else None
    if requested not in ("sdpa", "eager", "flash_attention_2"):
        raise ValueError(f"attn_implementation must be sdpa|eager|flash_attention_2|auto, got {requested!r}")
    if requested == "flash_attention_2":
        try:
            import flash_attn  # noqa: F401  optional: flash-attn is not a dependency
        except ImportError as e:
            raise ValueError("attn_implementation=flash_attention_2 needs the flash-attn package") from e
    return requested


# Tokenizers available offline for a randomly initialised LLM of a model type (no hub files).
OFFLINE_TOKENIZERS = {"qwen2": "builtin:qwen2.5"}


def checkpoint_config(name_or_path: str) -> tuple[dict, str]:
    """The raw ``config.json`` of a local folder or a cached hub model, and where it was read."""
    local = Path(name_or_path) / "config.json"
    if local.is_file():
        path = str(local)
    else:
        path = cached_file(name_or_path, "config.json")
        if path is None:
            raise FileNotFoundError(f"{name_or_path}: no config.json (not a local folder and not in the hub cache)")
    return json.loads(open(path, encoding="utf-8").read()), path


def llm_architecture(cfg: LLMConfig) -> tuple[dict, str]:
    """The LLM's config fields for a random build: the stored architecture, else the local
    checkpoint folder's config.json."""
    if cfg.architecture:
        return load_architecture(cfg.architecture), str(architecture_path(cfg.architecture))
    try:
        return checkpoint_config(cfg.name_or_path)
    except (OSError, FileNotFoundError) as e:
        raise ValueError(
            f"model.llm: random weights need model.llm.architecture (a file in affectgpt/model/architectures) "
            f"or a local checkpoint folder; {cfg.name_or_path!r} has no readable config.json ({e})"
        ) from e


def random_tokenizer_source(cfg: LLMConfig) -> str:
    """Tokenizer for random LLM weights: the configured one, a local folder's, else the offline
    tokenizer of the architecture's model type (``builtin:qwen2.5`` for qwen2)."""
    if cfg.tokenizer:
        return cfg.tokenizer
    if (Path(cfg.name_or_path) / "tokenizer_config.json").is_file():
        return cfg.name_or_path
    arch, where = llm_architecture(cfg)
    model_type = arch.get("model_type")
    if model_type not in OFFLINE_TOKENIZERS:
        raise ValueError(
            f"{where}: no offline tokenizer for model_type {model_type!r} (have {sorted(OFFLINE_TOKENIZERS)}); "
            "set model.llm.tokenizer to a local tokenizer folder"
        )
    return OFFLINE_TOKENIZERS[model_type]


def build_base_llm(cfg: LLMConfig, device: str | torch.device = "cpu", weights: str = "pretrained"):
    """The base causal LM: real weights (checked against ``cfg.architecture`` when set), or
    random weights from the architecture, built directly on ``device`` (``meta``: no memory)."""
    if weights == "pretrained":
        if cfg.architecture:
            found, where = checkpoint_config(cfg.name_or_path)
            check_architecture(
                load_architecture(cfg.architecture), found, str(architecture_path(cfg.architecture)), where
            )
        return load_base_llm(cfg, device)
    if weights != "random":
        raise ValueError(f"weights must be 'pretrained' or 'random', got {weights!r}")
    fields = dict(llm_architecture(cfg)[0])
    model_type = fields.pop("model_type")
    fields.pop("architectures", None)
    config = AutoConfig.for_model(model_type, **fields)
    with torch.device(device):
        return AutoModelForCausalLM.from_config(
            config, dtype=torch_dtype(cfg.dtype), trust_remote_code=cfg.trust_remote_code,
            attn_implementation=resolve_attn_implementation(cfg.attn_implementation, device))


def load_base_llm(cfg: LLMConfig, device: str | torch.device = "cpu"):
    """Load the causal LM strictly (transformers raises on missing weights; we re-check below)."""
    model, info = AutoModelForCausalLM.from_pretrained(
        cfg.name_or_path,
        dtype=torch_dtype(cfg.dtype),
        attn_implementation=resolve_attn_implementation(cfg.attn_implementation, device),
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


def wrap_lora(model, lora: LoraSettings, gradient_checkpointing: bool | str = False, checkpoint_every: int = 1):
    """Freeze the base model, set gradient checkpointing and add LoRA (plus modules_to_save).
    Returns the peft model."""
    model.requires_grad_(False)
    set_gradient_checkpointing(model, gradient_checkpointing, checkpoint_every)
    if not lora.enabled:
        return model
    from peft import LoraConfig, get_peft_model  # lazy: peft takes seconds to import; only LoRA needs it

    pcfg = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora_target_modules(model) if lora.target_modules == AUTO_TARGETS else list(lora.target_modules),
        modules_to_save=list(lora.modules_to_save) or None,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, pcfg)


CHECKPOINTING = {False: "none", None: "none", "none": "none", "false": "none", True: "full", "true": "full",
                 "full": "full", "mlp": "mlp"}


def checkpoint_mode(value) -> str:
    """``model.llm.gradient_checkpointing`` → "none" | "full" | "mlp"."""
    key = value.lower() if isinstance(value, str) else value
    if key not in CHECKPOINTING:
        raise ValueError(f"model.llm.gradient_checkpointing must be false, true/full or mlp, got {value!r}")
    return CHECKPOINTING[key]


def set_gradient_checkpointing(llm, mode, every: int = 1) -> None:
    """Switch activation checkpointing of a (peft-wrapped) causal LM to ``mode`` on every
    ``every``-th decoder block; non-reentrant, so recomputation works with a frozen embedding."""
    mode = checkpoint_mode(mode)
    if int(every) < 1:
        raise ValueError(f"model.llm.checkpoint_every must be >= 1, got {every!r}")
    base = llm.get_base_model() if hasattr(llm, "get_base_model") else llm
    layers = base.get_decoder().layers
    for layer in layers:  # undo an earlier mlp mode
        if "_unckpt_forward" in vars(layer.mlp):
            layer.mlp.forward = layer.mlp._unckpt_forward
            del layer.mlp._unckpt_forward
    new_names = hasattr(base, "activation_checkpointing_enable")  # transformers >= 5.x; the old ones warn
    (base.activation_checkpointing_disable if new_names else base.gradient_checkpointing_disable)()
    if mode == "full":
        if new_names:
            base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        for i, layer in enumerate(layers):
            layer.gradient_checkpointing = i % int(every) == 0
    elif mode == "mlp":
        for i, layer in enumerate(layers):
            if i % int(every) == 0:
                mlp = layer.mlp
                mlp._unckpt_forward = inner = mlp.forward  # bound: LoRA or fused kernels inside still apply

                def forward(x, _inner=inner, _mlp=mlp):
                    if _mlp.training and torch.is_grad_enabled():
                        return checkpoint(_inner, x, use_reentrant=False)
                    return _inner(x)

                mlp.forward = forward
    if mode != "none":
        base.config.use_cache = False


def lora_target_modules(model) -> list[str]:
    """Names (last component) of the linear layers inside the decoder's blocks: attention and MLP
    projections of any family, whatever it calls them; embeddings and the output head excluded."""
    decoder = model.get_decoder()
    names = sorted({name.rsplit(".", 1)[-1] for name, m in decoder.named_modules()
                    if isinstance(m, (nn.Linear, Conv1D)) and re.search(r"\.\d+\.", f".{name}")})
    if not names:
        raise ValueError(f"{type(model).__name__}: no linear layers found in the decoder blocks for LoRA; "
                         "set model.llm.lora.target_modules to a list of module names")
    return names


def output_logits(base, hidden: torch.Tensor) -> torch.Tensor:
    """Logits as the family's own forward computes them from the last hidden states: the output
    head, then Gemma 2's final soft-capping, Cohere's logit_scale, Granite's logits_scaling."""
    logits = base.get_output_embeddings()(hidden)
    cfg = base.config
    if getattr(cfg, "final_logit_softcapping", None):
        cap = cfg.final_logit_softcapping
        logits = torch.tanh(logits / cap) * cap
    if getattr(cfg, "logit_scale", None) is not None and not isinstance(cfg.logit_scale, bool):
        logits = logits * cfg.logit_scale
    if getattr(cfg, "logits_scaling", None):
        logits = logits / cfg.logits_scaling
    return logits


def embeddings_tied(model) -> bool:
    head = model.get_output_embeddings()
    return head is not None and head.weight is model.get_input_embeddings().weight


class AddedTokenRows(nn.Module):
    """The rows of the embedding table (and of an untied output head) for tokens the base
    vocabulary lacks (the modality placeholders). Fixed, never trained: the mean of the pretrained
    rows, computed in float32 (no random draw). Kept here as buffers so the trainable state and the
    adapter bundle save them and a load writes them back: the model that infers is the one that trained."""

    def __init__(self, start: int, input_rows: torch.Tensor, output_rows: torch.Tensor | None):
        super().__init__()
        self.start = start
        self.register_buffer("input", input_rows.detach().clone())
        self.register_buffer("output", None if output_rows is None else output_rows.detach().clone())

    def write(self, llm) -> None:
        """Copy the held rows into the LLM's tables (after a load replaced the buffers)."""
        tables = [(llm.get_input_embeddings().weight, self.input)]
        if self.output is not None:
            tables.append((llm.get_output_embeddings().weight, self.output))
        with torch.no_grad():
            for weight, rows in tables:
                if weight.shape[0] != self.start + rows.shape[0]:
                    raise RuntimeError(f"embedding table has {weight.shape[0]} rows, expected {self.start} + "
                                       f"{rows.shape[0]} added ones (not restorable into a ZeRO-3 partition)")
                weight[self.start:].copy_(rows)


def add_token_rows(base, tokenizer) -> AddedTokenRows | None:
    """Grow the embedding table to the tokenizer (only when it holds more tokens than rows), keep a
    tied head tied, set the new rows to the mean of the old ones; None when no row was added."""
    start = base.get_input_embeddings().weight.shape[0]
    if len(tokenizer) <= start:
        return None
    tied = embeddings_tied(base)
    base.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    if tied != embeddings_tied(base):
        raise RuntimeError(f"{type(base).__name__}: resizing the embedding table untied the output head")
    tables = [base.get_input_embeddings().weight]
    head = base.get_output_embeddings()
    if head is not None and not tied:
        if head.weight.shape[0] != len(tokenizer):
            raise RuntimeError(f"{type(base).__name__}: output head has {head.weight.shape[0]} rows after resizing "
                               f"to {len(tokenizer)} tokens")
        tables.append(head.weight)
    with torch.no_grad():
        for weight in tables:
            weight[start:] = weight[:start].float().mean(0).to(weight.dtype)
    return AddedTokenRows(start, tables[0][start:], tables[1][start:] if len(tables) > 1 else None)
