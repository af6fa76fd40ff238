"""Fused GPU kernels for the LLM: ``model.llm.kernels=liger|none``.

``liger`` swaps in Liger-Kernel's Triton kernels for RMSNorm, SwiGLU and RoPE in the decoder and
computes the output layer and the loss at the target positions as one fused linear
cross-entropy (the [target tokens, vocabulary] logits never exist). Liger is pure Python on
Triton: it needs a CUDA device, ``triton`` and ``liger-kernel`` (``pip install affectgpt[gpu]``).
Anything else is refused with what is missing, never silently turned off. ``none`` (the
default, and the only choice on CPU) keeps transformers' own modules.

Liger patches the family's RoPE function in transformers' modeling module for the whole process
(its design); RMSNorm and SwiGLU are patched on the given model instance.
"""

from __future__ import annotations

import importlib
import importlib.util

import torch

KERNELS = ("none", "liger")


def liger_unavailable(device: str | torch.device) -> str | None:
    """Why ``kernels=liger`` cannot run here (None: it can)."""
    if not str(device).startswith("cuda"):
        return f"the model is on {device}, Liger's Triton kernels need a CUDA device (use model.llm.kernels=none)"
    for module, package in (("triton", "triton"), ("liger_kernel", "liger-kernel")):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a module blocked or half-installed
            found = False
        if not found:
            return f"the Python package {package!r} is not installed (pip install {package}, or affectgpt[gpu])"
    return None


def check_kernels(name: str, device: str | torch.device) -> str:
    """The validated kernel choice; ValueError naming the option and what is missing."""
    if name not in KERNELS:
        raise ValueError(f"model.llm.kernels must be one of {list(KERNELS)}, got {name!r}")
    if name == "liger":
        why = liger_unavailable(device)
        if why:
            raise ValueError(f"model.llm.kernels=liger: {why}")
    return name


def apply_kernels(base_llm, name: str, device: str | torch.device) -> str:
    """Patch a base causal LM (before LoRA wraps it) with the chosen kernels; returns the choice."""
    name = check_kernels(name, device)
    if name == "none":
        return name
    model_type = base_llm.config.model_type
    transformers_api = importlib.import_module("liger_kernel.transformers")
    apply = getattr(transformers_api, f"apply_liger_kernel_to_{model_type}", None)
    if apply is None:
        raise ValueError(f"model.llm.kernels=liger: Liger has no kernels for the LLM family {model_type!r}")
    # The loss is fused in AffectGPT.forward (target positions only), not in the LM's own forward.
    apply(rope=True, rms_norm=True, swiglu=True, cross_entropy=False, fused_linear_cross_entropy=False, model=base_llm)
    return name


def fused_linear_cross_entropy(hidden: torch.Tensor, head: torch.nn.Module, labels: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy of ``head(hidden)`` against ``labels`` without the logits tensor
    (Liger's chunked fused kernel; fp32 accumulation)."""
    from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss  # optional: the [gpu] extra

    loss = LigerFusedLinearCrossEntropyLoss(reduction="sum")
    return loss(head.weight, hidden.to(head.weight.dtype), labels, getattr(head, "bias", None))
