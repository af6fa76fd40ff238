"""Modality rows into token embeddings, and the batch arithmetic around it.

The collator writes one placeholder token per modality token (``affectgpt.core.plan``); the model
computes each sample's modality rows (``AffectGPT.modality_embeddings``) and ``splice`` puts them
where the placeholders are: one masked scatter per modality, after checking, row by row, that the
placeholders and the rows agree in number.
"""

from __future__ import annotations

import torch

from affectgpt.core.plan import SAMPLE_RATE, TokenPlan


def num_samples(batch: dict) -> int:
    """Samples in a batch: one per row, or ``len(sample_row)`` when packed."""
    return len(batch["sample_row"]) if "sample_row" in batch else batch["input_ids"].shape[0]


def pack_modality_rows(rows: dict[str, list], sample_row: torch.Tensor, n_rows: int) -> dict[str, list]:
    """Per-sample modality tokens → per packed row, the row's samples' tokens concatenated in order."""
    out: dict[str, list] = {}
    for key, per_sample in rows.items():
        grouped: list[list[torch.Tensor]] = [[] for _ in range(n_rows)]
        for j, r in enumerate(sample_row.tolist()):
            if per_sample[j] is not None and per_sample[j].shape[0]:
                grouped[r].append(per_sample[j])
        out[key] = [torch.cat(g) if g else None for g in grouped]
    return out


def audio_seconds_to_tokens(plan: TokenPlan, seconds: float) -> int:
    return plan.audio_tokens(int(round(seconds * SAMPLE_RATE)))


def splice(embeds: torch.Tensor, ids: torch.Tensor, rows: dict[str, list], token_ids: dict[str, tuple[int, ...]],
           names: list[str]) -> torch.Tensor:
    """``embeds`` [B, L, D] with, per modality ``key``, the positions of ``ids`` holding one of
    ``token_ids[key]`` replaced by the rows ``rows[key][i]`` of row i (None: no rows), in order.
    RuntimeError naming the sample (``names[i]``) when a row's placeholders and rows differ in number."""
    out = embeds
    for key, tids in token_ids.items():
        mask = torch.isin(ids, torch.tensor(tids, device=ids.device))
        placeholders = mask.sum(1).tolist()
        have = [0 if r is None else r.shape[0] for r in rows[key]]
        for i, (n, h) in enumerate(zip(placeholders, have, strict=True)):
            if n != h:
                raise RuntimeError(f"sample {names[i]!r}: {n} {key} placeholders but {h} {key} tokens")
        if sum(have):  # rows fill the masked positions in row-major order: row 0's first, in position order
            source = torch.cat([r for r, h in zip(rows[key], have, strict=True) if h]).to(out.dtype)
            out = out.masked_scatter(mask.unsqueeze(-1), source)
    return out
