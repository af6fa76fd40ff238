"""The samples of a split, as the data config names them: a manifest, generated synthetic clips,
or a list of sources (EMER CSV, MER2025 folder, JSONL) mixed by ratio."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from affectgpt.data.manifest import Sample, read_manifest
from affectgpt.data.readers import Source, epoch_counts, mix_epoch, read_source
from affectgpt.data.synthetic import ensure_dataset

log = logging.getLogger("affectgpt.data")


def load_split(data_cfg: DictConfig, split: str) -> list[Sample]:
    """Read a split's manifest; the synthetic dataset is generated on first use. For ``data.kind:
    sources`` the training split is every sample any epoch can draw (``TrainSplit.pool``, what
    the feature cache must hold); training takes its epochs from ``load_train``."""
    if data_cfg.kind == "sources":
        if split == "train":
            return load_train(data_cfg).pool
        return [s for src in read_sources(data_cfg, split) for s in src.samples]
    if data_cfg.kind == "synthetic":
        ensure_dataset(Path(data_cfg.root), seed=data_cfg.seed, n_train=data_cfg.n_train, n_val=data_cfg.n_val,
                       n_test=data_cfg.n_test)
    manifest = data_cfg.get(f"{split}_manifest")
    if not manifest:
        raise ValueError(f"data.{split}_manifest is not set")
    return read_manifest(manifest)


def load_train(data_cfg: DictConfig) -> TrainSplit:
    """The training split epoch by epoch: a mixture of ``data.train_sources`` re-drawn every
    epoch, or the manifest's (or synthetic set's) list, the same every epoch."""
    if data_cfg.kind == "sources":
        return TrainSplit.mixture(read_sources(data_cfg, "train"), data_cfg.get("seed", 0), data_cfg.get("epoch_size"))
    return TrainSplit(load_split(data_cfg, "train"))


@dataclass(frozen=True)
class TrainSplit:
    """``pool``: every training sample any epoch can draw. ``epoch(e)``: epoch e's sample list, a pure
    function of (sources, seed, e), so every rank and a resumed run get the same list; without
    ``sources`` it is ``pool`` itself every epoch (the sampler shuffles it)."""

    pool: list[Sample]
    sources: list[Source] | None = None
    seed: int = 0
    epoch_size: int | None = None

    @classmethod
    def mixture(cls, sources: list[Source], seed: int, epoch_size: int | None) -> TrainSplit:
        """A source's share of an epoch is the same every epoch, so the pool is every sample of each
        source whose share is not 0 (a ratio 0 source is never drawn)."""
        size = sum(len(s.samples) for s in sources) if epoch_size is None else epoch_size
        shares = epoch_counts(sources, size)  # checks the ratios
        pool = [s for src, n in zip(sources, shares, strict=True) if n for s in src.samples]
        log.info("training mixture, re-drawn every epoch: %s", ", ".join(
            f"{s.name} {n} of {len(s.samples)}" for s, n in zip(sources, shares, strict=True)))
        return cls(pool, sources, seed, epoch_size)

    def epoch(self, epoch: int) -> list[Sample]:
        if self.sources is None:
            return self.pool
        return mix_epoch(self.sources, epoch, self.seed, self.epoch_size)


def read_sources(data_cfg: DictConfig, split: str) -> list[Source]:
    """``data.kind: sources``: every entry of ``data.<split>_sources`` is read by
    ``affectgpt.data.readers.read_source`` (EMER CSV, MER2025 folder, track CSVs, JSONL) and its
    report logged. Training mixes the sources by their ``ratio`` (``TrainSplit``); evaluation
    splits are concatenated as they are."""
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
    return sources
