"""The samples of a split, as the data config names them: a manifest, generated synthetic clips,
or a list of sources (EMER CSV, MER2025 folder, JSONL) mixed by ratio."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .manifest import Sample, read_manifest

log = logging.getLogger("affectgpt.data")


def load_split(data_cfg: DictConfig, split: str) -> list[Sample]:
    """Read a split's manifest; the synthetic dataset is generated on first use."""
    if data_cfg.kind == "synthetic":
        from .synthetic import ensure_dataset

        ensure_dataset(Path(data_cfg.root), seed=data_cfg.seed, n_train=data_cfg.n_train, n_val=data_cfg.n_val,
                       n_test=data_cfg.n_test)
    if data_cfg.kind == "sources":
        return load_sources(data_cfg, split)
    manifest = data_cfg.get(f"{split}_manifest")
    if not manifest:
        raise ValueError(f"data.{split}_manifest is not set")
    return read_manifest(manifest)


def load_sources(data_cfg: DictConfig, split: str) -> list[Sample]:
    """``data.kind: sources``: every entry of ``data.<split>_sources`` is read by
    ``affectgpt.data.readers.read_source`` (EMER CSV, MER2025 folder, track CSVs, JSONL) and its
    report logged. Training mixes the sources by their ``ratio`` (one mixture, fixed by the seed,
    for the whole run); evaluation splits are concatenated as they are."""
    from .readers import Source, mix_epoch, read_source

    specs = data_cfg.get(f"{split}_sources") or []
    if not specs:
        raise ValueError(f"data.{split}_sources is empty: list at least one source (format, path, ...)")
    sources = []
    for i, spec in enumerate(specs):
        spec = OmegaConf.to_container(spec, resolve=True) if isinstance(spec, DictConfig) else dict(spec)
        samples, report = read_source(spec, base_dir=data_cfg.root)
        log.info("%s", report)
        if not samples:
            raise ValueError(f"data.{split}_sources[{i}] ({report.source}) kept no samples:\n{report}")
        sources.append(Source(spec.get("name") or report.source, samples, float(spec.get("ratio", 1.0))))
    if split != "train":
        return [s for src in sources for s in src.samples]
    return mix_epoch(sources, epoch=0, seed=data_cfg.get("seed", 0), epoch_size=data_cfg.get("epoch_size"))
