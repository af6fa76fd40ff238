"""Inference: load a checkpoint, run clips, return ``{"name", "description", "emotions", "task"}``."""

from __future__ import annotations

from pathlib import Path

import torch

from .data.collate import ClipDataset, Collator, worker_init
from .data.manifest import Sample


def load_checkpoint_model(folder: str | Path, device: str = "cpu", dtype: str | None = None):
    """Build the model a training checkpoint describes and load its trainable weights strictly."""
    from omegaconf import OmegaConf

    from . import checkpoint as ckpt
    from .model.build import build_model

    folder = Path(folder)
    cfg_path = folder / "config.yaml"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{folder}: not a checkpoint (no config.yaml)")
    cfg = OmegaConf.load(cfg_path)
    if dtype:
        cfg.model.llm.dtype = dtype
    model = build_model(cfg.model, device=device)
    model.load_trainable_state_dict(ckpt.load_trainable(folder), source=str(folder))
    model.eval()
    return model, cfg


def emotions_from_text(text: str) -> list[str]:
    """The emotion list of a generated answer: the structured ending, else the scorer's extractor."""
    from .data.prompts import parse_emotion_list

    found = parse_emotion_list(text)
    if found is not None:
        return found
    from .eval import extract_emotions

    return extract_emotions(text)


@torch.no_grad()
def predict(model, samples: list[Sample], task: str = "describe", batch_size: int = 8, max_new_tokens: int = 256,
            progress: bool = False, num_workers: int = 0, **gen) -> list[dict]:
    """Generate for each sample; a clip that fails to decode becomes an error row, never a swap."""
    from tqdm import tqdm

    plan = model.token_plan()
    collate = Collator(model.tokenizer, plan, max_length=10**9, train=False)
    loader = torch.utils.data.DataLoader(ClipDataset(samples, plan, task=task), batch_size=batch_size,
                                         collate_fn=collate, num_workers=num_workers,
                                         worker_init_fn=worker_init)
    rows = []
    for batch in tqdm(loader, disable=not progress, desc=f"generate ({task})", dynamic_ncols=True):
        rows += [{"name": n, "task": task, "error": e} for n, e in batch["bad"]]
        if not batch["names"]:
            continue
        texts = model.generate(batch, max_new_tokens=max_new_tokens, **gen)
        for name, text in zip(batch["names"], texts):
            rows.append({"name": name, "task": task, "description": text, "emotions": emotions_from_text(text)})
    return rows
