"""``python -m affectgpt.apps.features [train.py overrides] [features.splits=[train,val]]``: extract the
frozen-encoder features of the configured splits into ``features.cache_dir``, then exit (the cache and
its identity: :mod:`affectgpt.recipe.features`). With ``data.subtitle=auto`` every clip is also
transcribed once into ``features.cache_dir/transcripts.jsonl`` (:mod:`affectgpt.recipe.transcripts`).
Under ``torchrun`` / ``accelerate launch`` each process extracts every world-th shard."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from affectgpt.apps.cli import TRAIN_VERBATIM, Command, UsageError, run
from affectgpt.core.runlock import FolderLocked, acquire
from affectgpt.recipe.features import FeatureStore, encoder_identity, extract, split_tag, write_identity

log = logging.getLogger("affectgpt.apps.features")
FEATURES = Command(prog="python -m affectgpt.apps.features", config="train", verbatim=TRAIN_VERBATIM,
                   doc="Extract the frozen-encoder features of the configured splits (features.splits) into "
                       "features.cache_dir, then exit. Options: conf/train.yaml.")


def main(argv: list[str] | None = None) -> int:
    """``python -m affectgpt.apps.features [overrides]``: extract the configured splits, then exit."""
    return run(FEATURES, _extract_command, argv)


def _extract_command(cfg) -> int:
    import torch
    from accelerate import PartialState

    from affectgpt.data.splits import load_split
    from affectgpt.model.build import build_model

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not cfg.features.cache_dir:
        raise UsageError("features.cache_dir is not set (give features.cache_dir=DIR or data.feature_cache=DIR)")
    # cpu=True without CUDA is what makes Accelerate see torchrun's / accelerate launch's processes.
    state = PartialState(cpu=cfg.device == "cpu" or not torch.cuda.is_available())
    if state.num_processes != int(os.environ.get("WORLD_SIZE", "1")):
        raise SystemExit(
            f"the launcher started {os.environ.get('WORLD_SIZE')} processes but Accelerate sees {state.num_processes}"
        )
    torch.manual_seed(cfg.seed)
    with state.main_process_first():
        samples = {split: load_split(cfg.data, split) for split in cfg.features.splits}
        model = build_model(cfg.model, device=state.device)
    model.eval()
    visual = cfg.data.get("visual", "frames")
    identity = encoder_identity(model, cfg.features.dtype, visual)
    cache_dir = Path(cfg.features.cache_dir)
    if state.is_main_process:
        # One lock for the whole launch, before the first write into the cache; not earlier, since the cache
        # folder may sit inside a synthetic data.root that must be generated into an empty folder first.
        try:
            lock = acquire(cache_dir, "python -m affectgpt.apps.features")
        except FolderLocked as e:
            raise UsageError(str(e)) from None
        if lock.took_over:
            log.warning("%s", lock.describe_takeover())
        write_identity(cache_dir, identity)
    state.wait_for_everyone()
    for split, rows in samples.items():
        tag = split_tag(rows, cfg.data.get(f"{split}_manifest") or split)
        n = extract(model, rows, cache_dir, tag, identity, cfg.features.shard_size, cfg.features.batch_size,
                    cfg.trainer.num_workers, state.process_index, state.num_processes, progress=True, visual=visual)
        log.info("rank %d/%d: %s: %d of %d clips encoded by this process", state.process_index, state.num_processes,
                 split, n, len(rows))
    if cfg.data.get("subtitle", "given") == "auto":  # transcripts.jsonl beside the features, for training to read
        from affectgpt.recipe.transcripts import clip_key, transcribe_splits

        transcribe_splits(cfg, model, samples, state)
        if state.is_main_process:
            clips = {clip_key(s) for rows in samples.values() for s in rows}
            print(f"{cache_dir}: transcripts of {len(clips)} clips in transcripts.jsonl")
    state.wait_for_everyone()
    if state.is_main_process:
        store = FeatureStore(cache_dir, identity)
        for split, rows in samples.items():
            missing = store.missing(rows)
            if missing:
                raise SystemExit(
                    f"{cache_dir}: {split}: {len(missing)} samples missing after extraction: {missing[:5]}"
                )
        print(f"{cache_dir}: {len(store.index)} clips cached")
    return 0


if __name__ == "__main__":
    sys.exit(main())
