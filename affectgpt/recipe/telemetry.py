"""What a training run reports: throughput, peak memory, wandb, and ``curves.png``.

wandb is optional and imported only when used: ``wandb.mode`` in the config (or ``WANDB_MODE``)
decides; with no mode and no ``WANDB_API_KEY`` the run logs offline into the output dir. The
progress bar and ``curves.png`` need no server at all.
"""

from __future__ import annotations

import logging
import os
import resource
import time
from pathlib import Path

import numpy as np
import torch

from affectgpt import eval as scorer
from affectgpt.core.fileio import atomic_path

log = logging.getLogger("affectgpt.train")


class Throughput:
    """Samples/s, tokens/s and model FLOP/s over the steps since the meter started (resumes start a new meter)."""

    def __init__(self):
        self.t0, self.samples, self.tokens, self.flops = time.perf_counter(), 0, 0, 0.0

    def update(self, samples: int, tokens: int, flops: float = 0.0) -> None:
        self.samples += samples
        self.tokens += tokens
        self.flops += flops

    def rates(self) -> tuple[float, float]:
        dt = max(time.perf_counter() - self.t0, 1e-9)
        return self.samples / dt, self.tokens / dt

    def mfu(self, peak_tflops: float) -> float:
        """Model FLOPs per second over ``peak_tflops`` (``affectgpt.model.flops``), as a fraction."""
        return self.flops / max(time.perf_counter() - self.t0, 1e-9) / (peak_tflops * 1e12)


def peak_memory_mb(device: torch.device) -> float:
    """Peak accelerator memory allocated by torch, or this process's peak RSS on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def wandb_mode(configured: str | None) -> str:
    """The mode a run uses: the config's, else ``WANDB_MODE``, else online with a key and offline without."""
    mode = configured or os.environ.get("WANDB_MODE")
    if mode:
        return mode
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


def init_wandb(wcfg, output_dir: Path, config: dict):
    """A wandb run, or None when disabled. Its files go under the output dir."""
    mode = wandb_mode(wcfg.mode)
    if mode == "disabled":
        return None
    import wandb  # lazy: only with wandb logging on; a second to import

    return wandb.init(project=wcfg.project, name=wcfg.name, mode=mode, dir=str(output_dir), config=config)


VALIDATION_SERIES = (("val_f1", "label F1 (exact)"), ("val_precision", "label P"), ("val_recall", "label R"),
                     ("val_m_avg_f1", "scorer M-avg F1"), ("val_wheel_l1_f1", "scorer wheel L1 F1"),
                     ("val_clue_f1", "clue F1"))


def validation_record(step: int, metrics: dict) -> dict:
    """The history entry of one evaluation: the metrics ``curves.png`` draws (``val_f1`` always present)."""
    exact = metrics.get("exact") or {}
    scorer = metrics.get("scorer") or {}
    label, clue = scorer.get("label") or {}, scorer.get("clue") or {}
    row = {"step": step, "val_f1": exact.get("f1"), "val_precision": exact.get("precision"),
           "val_recall": exact.get("recall"), "val_m_avg_f1": label.get("m_avg_f1"),
           "val_wheel_l1_f1": label.get("wheel_l1_f1"), "val_clue_f1": clue.get("f1")}
    return {k: v for k, v in row.items() if v is not None or k in ("step", "val_f1")}


def curves_figure(history: list[dict]):
    """loss, learning rate and every validation metric in ``VALIDATION_SERIES`` over steps; for the
    GRPO stage (history rows with a ``reward``) the rollout reward and the KL in place of the first two."""
    import matplotlib  # lazy: only plots need it; Agg is set before pyplot

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: only plots need it; Agg is set before pyplot

    train = [h for h in history if "loss" in h]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    if train and "reward" in train[-1]:
        _reward_panels(axes, train)
    else:
        _loss_panels(axes, train)
    for key, label in VALIDATION_SERIES:
        val = [h for h in history if h.get(key) is not None]
        if val:
            axes[2].plot([h["step"] for h in val], [h[key] for h in val], marker="o", ms=3, label=label)
    if axes[2].lines:
        axes[2].legend(fontsize=7, loc="lower right")
    axes[2].set(title="validation metrics", xlabel="step", ylim=(0, 1.02))
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _loss_panels(axes, train: list[dict]) -> None:
    axes[0].plot([h["step"] for h in train], [h["loss"] for h in train], lw=1)
    axes[0].set(title="training loss (per target token)", xlabel="step")
    if train and min(h["loss"] for h in train) > 0:
        axes[0].set_yscale("log")
    axes[1].plot([h["step"] for h in train], [h["lr"] for h in train], lw=1)
    axes[1].set(title="learning rate (first group)", xlabel="step")


def _reward_panels(axes, train: list[dict]) -> None:
    steps = [h["step"] for h in train]
    for key in [k for k in train[-1] if k.startswith("reward") and not k.endswith("_std")]:
        axes[0].plot(steps, [h.get(key) for h in train], lw=1, label=key)
    axes[0].legend(fontsize=7)
    axes[0].set(title="rollout reward (mean per step)", xlabel="step")
    axes[1].plot(steps, [h["kl"] for h in train], lw=1)
    axes[1].set(title="KL to the reference (k3, per token)", xlabel="step")


def plot_curves(history: list[dict], path: Path) -> None:
    """``curves_figure`` as one PNG, replaced whole."""
    import matplotlib.pyplot as plt  # lazy: only plots need it; Agg is set before pyplot

    fig = curves_figure(history)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=90, format="png")
    finally:
        plt.close(fig)


def label_prf(pred: list[list[str]], gold: list[list[str]]) -> dict:
    """Exact-match label precision/recall/F1, averaged over samples (F from the averaged P and R)."""
    ps, rs = [], []
    for p, g in zip(pred, gold, strict=False):
        p, g = {x.lower() for x in p}, {x.lower() for x in g}
        hit = len(p & g)
        ps.append(hit / len(p) if p else 0.0)
        rs.append(hit / len(g) if g else 0.0)
    P, R = (float(np.mean(ps)) if ps else 0.0), (float(np.mean(rs)) if rs else 0.0)
    return {"precision": P, "recall": R, "f1": 2 * P * R / (P + R) if P + R else 0.0, "n": len(ps)}


def evaluate_predictions(preds: list[dict], samples: list) -> dict:
    """metrics.json: exact-match label P/R/F1 plus the built-in scorer's report."""
    by_name = {p["name"]: p for p in preds}
    gold = [{"name": s.name, "emotions": list(s.emotions or []), "description": s.description} for s in samples]
    exact = label_prf([by_name.get(s.name, {}).get("emotions") or [] for s in samples], [g["emotions"] for g in gold])
    ok = [p for p in preds if not p.get("error")]
    return {"exact": exact, "scorer": scorer.score(ok, gold), "n_errors": len(preds) - len(ok)}
