"""MER-UniBench runner: answer the open-vocabulary question on every test set, then score.

    python -m affectgpt.apps.bench checkpoint=DIR[,DIR...] root=DIR output=DIR [sets=mer2023,meld] [visual=faces]
    accelerate launch -m affectgpt.apps.bench ...        (data-parallel: each rank a shard, one merged file)

Writes ``output/predictions/<checkpoint>/<set>.jsonl`` (``{"name", "reason", "emotions"}`` or
``{"name", "error"}`` for a clip that failed; with ``subtitle=auto`` also the transcript the answer saw:
``subtitle``, ``subtitle_source``, ``asr``), ``output/metrics.json`` and prints the table of
:mod:`affectgpt.unibench.score`. Resumable: names already written (merged or per-rank part files)
are skipped. Options and defaults: conf/bench.yaml. Bad input: exit code 2 and one line.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from affectgpt.apps.cli import Command, UsageError, run
from affectgpt.core.fileio import atomic_write
from affectgpt.core.plan import GENERATION_PRESETS
from affectgpt.core.predictions import ASR_FIELDS
from affectgpt.core.runlock import FolderLocked, acquire
from affectgpt.data.faces import on_the_fly_note, without_face_file
from affectgpt.eval.scorer import resolve_lexicon
from affectgpt.runtime.asr import asr_config, encoder_checkpoint_of, transcribe_samples
from affectgpt.unibench.data import find_sets
from affectgpt.unibench.llm import UniBenchLLM
from affectgpt.unibench.score import format_table, load_predictions, score_unibench

TASK = "labels"  # the open-vocabulary question: "Please recognize all possible emotional states of the character."


BENCH = Command(prog="python -m affectgpt.apps.bench", config="bench", doc=__doc__.split("\n\n")[0],
                verbatim=("checkpoint", "root", "output", "llm", "wheels"), repeatable=("checkpoint",))


def fail(message: str):
    """Bad input: exit code 2 with this one line."""
    raise UsageError(message)


def checkpoint_paths(values) -> list[Path]:
    """``checkpoint=`` values (the key may be repeated): a value that is not an existing path but whose
    comma-separated parts are is several checkpoints; a path with a comma in its name stays whole."""
    paths = []
    for value in values:
        parts = [p.strip() for p in str(value).split(",") if p.strip()]
        whole = Path(value).exists() or len(parts) < 2 or not all(Path(p).exists() for p in parts)
        paths += [Path(value)] if whole else [Path(p) for p in parts]
    return paths


def _split(value) -> list[str]:
    if value is None:
        return []
    items = list(value) if OmegaConf.is_list(value) or isinstance(value, (list, tuple)) else str(value).split(",")
    return [str(x).strip() for x in items if str(x).strip()]


def checkpoint_tags(paths: list[Path]) -> list[str]:
    """Short unique names: the folder name, with parent folders added while two would collide."""
    depth = 1
    while True:
        tags = ["-".join(p.resolve().parts[-depth:]) for p in paths]
        if len(set(tags)) == len(tags) or depth > 8:
            return tags
        depth += 1


def checkpoint_visual(path: Path) -> str:
    """The ``data.visual`` a training checkpoint was trained with (frames when absent or an export)."""
    cfg_path = path / "config.yaml"
    if cfg_path.is_file():
        return str(OmegaConf.select(OmegaConf.load(cfg_path), "data.visual", default="frames") or "frames")
    return "frames"


def _part_files(merged: Path) -> list[Path]:
    return sorted(merged.parent.glob(f"{merged.name.removesuffix('.jsonl')}.rank*.jsonl"))


def run_set(model, loaded, samples, merged: Path, gen: dict, cfg, state, visual: str) -> dict:
    """This rank's shard of the names not yet written, then (main process) one merged file in gold order."""
    from affectgpt.runtime.inference import (  # lazy: the command stays torch-free until it needs the model
        read_done,
        run_manifest,
    )

    # Shard first, then skip what is written: a rank that starts late must not see another rank's
    # fresh rows shift its shard (that lost samples).
    done = {r["name"] for p in [merged, *_part_files(merged)] for r in read_done(p)}
    mine = [s for s in samples[state.process_index :: state.num_processes] if s.name not in done]
    part = merged.with_name(f"{merged.name.removesuffix('.jsonl')}.rank{state.process_index}.jsonl")
    if cfg.get("subtitle", "given") == "auto":  # each clip's transcript replaces the set's subtitle
        try:
            asr = asr_config(cfg.get("asr"))
            asr.device = str(model.device)
            mine = transcribe_samples(mine, asr, encoder_checkpoint_of(model), progress=state.is_main_process)
        except (OSError, ValueError) as e:
            fail(f"subtitle=auto: {e}")
    elif cfg.get("subtitle", "given") != "given":
        fail(f"subtitle={cfg.subtitle}: expected given or auto")
    counts = run_manifest(model, mine, part, TASK, gen,
                          batch_size=int(cfg.batch_size), num_workers=int(cfg.num_workers), system=loaded.system,
                          progress=state.is_main_process, visual=visual)
    state.wait_for_everyone()
    if state.is_main_process:
        rows = {}
        for p in [merged, *_part_files(merged)]:
            for r in read_done(p):
                rows[r["name"]] = r if "reason" in r or "error" in r else {
                    "name": r["name"], "reason": r.get("description", ""), "emotions": r.get("emotions", []),
                    **{k: r[k] for k in ASR_FIELDS if k in r}}  # subtitle=auto: the transcript the answer saw
        with atomic_write(merged) as f:
            for s in samples:
                if s.name in rows:
                    f.write(json.dumps(rows[s.name], ensure_ascii=False) + "\n")
        for p in _part_files(merged):
            p.unlink()
    state.wait_for_everyone()
    return {"skipped": len(done), **{k: counts[k] for k in ("written", "errors")}}


def main(argv: list[str] | None = None) -> int:
    return run(BENCH, _bench_command, argv)


def _bench_command(cfg: DictConfig) -> int:
    checkpoints = checkpoint_paths(cfg.checkpoint)  # visual, decoding, labels: checked by the schema (BenchConfig)
    missing = [str(c) for c in checkpoints if not c.is_dir()]
    if missing:
        fail(f"{', '.join(missing)}: no such folder")
    try:
        sets = find_sets(cfg.root, _split(cfg.sets) or None, check_sizes=bool(cfg.check_sizes))
    except (OSError, ValueError) as e:
        fail(str(e))
    if not sets:
        fail(f"{cfg.root}: no MER-UniBench set found (expected *-process folders or <set>_test.jsonl)")
    without_media = [name for name, t in sets.items() if not t.samples]
    if without_media:
        fail(f"{cfg.root}: sets {without_media} have gold but no media paths to run on")

    import torch  # lazy: the command stays torch-free until it needs the model
    from accelerate import PartialState  # lazy: the command stays torch-free until it needs the model

    from affectgpt.runtime.inference import artifact_kind  # lazy: the command stays torch-free until it needs the model
    from affectgpt.runtime.open import (  # lazy: the command stays torch-free until it needs the model
        ArtifactError,
        open_artifact,
        resolve_merge,
    )

    try:
        for c in checkpoints:
            artifact_kind(c)
    except ValueError as e:
        fail(str(e))
    if os.environ.get("RANK", "0") == "0":  # one job per output folder; the main process locks for all ranks
        try:
            lock = acquire(cfg.output, "python -m affectgpt.apps.bench")
        except FolderLocked as e:
            fail(str(e))
        if lock.took_over:
            print(lock.describe_takeover(), file=sys.stderr)
    state = PartialState(cpu=cfg.device == "cpu" or not torch.cuda.is_available())
    device = str(state.device) if cfg.device == "auto" else str(cfg.device)
    try:
        resolve_merge(cfg.merge_lora, device)  # a bad policy fails before the first checkpoint loads
    except ArtifactError as e:
        fail(str(e))
    gen = dict(GENERATION_PRESETS[cfg.decoding])
    if cfg.max_new_tokens is not None:
        gen["max_new_tokens"] = int(cfg.max_new_tokens)
    out = Path(cfg.output)
    summary = {}
    for path, tag in zip(checkpoints, checkpoint_tags(checkpoints), strict=True):
        visual = cfg.visual or checkpoint_visual(path)
        if visual == "faces" and state.is_main_process:
            for name, test in sets.items():
                if missing := without_face_file(test.samples):
                    print(f"{name}: {on_the_fly_note(missing, len(test.samples))}", file=sys.stderr)
        try:
            loaded = open_artifact(path, device=device, dtype=cfg.dtype, merge_lora=cfg.merge_lora,
                                   trust_remote_code=bool(cfg.trust_remote_code),
                                   verify_hashes=bool(cfg.verify_hashes)).loaded
        except ArtifactError as e:
            fail(str(e))
        torch.manual_seed(int(cfg.seed) + state.process_index)
        for name, test in sets.items():
            merged = out / "predictions" / tag / f"{name}.jsonl"
            counts = run_set(loaded.model, loaded, test.samples, merged, gen, cfg, state, visual)
            summary.setdefault(tag, {})[name] = counts
            if state.is_main_process:
                print(f"{tag} {name}: {counts['written']} written ({counts['errors']} errors), "
                      f"{counts['skipped']} already there", file=sys.stderr)
        del loaded
    if not state.is_main_process:
        return 0
    record = {
        "checkpoints": {t: str(p.resolve()) for p, t in zip(checkpoints, checkpoint_tags(checkpoints), strict=True)},
        "root": str(Path(cfg.root).resolve()),
        "task": TASK,
        "generation": gen,
        "seed": int(cfg.seed),
        "visual": cfg.visual,
        "runs": summary,
    }
    (out / "bench.json").write_text(json.dumps(record, indent=1) + "\n")
    if cfg.score:
        llm = None
        if cfg.labels == "llm":
            if not cfg.llm:
                fail("labels=llm needs llm=DIR (a local Hugging Face causal LM folder)")
            llm = UniBenchLLM(cfg.llm)
        try:
            result = score_unibench({n: t.gold for n, t in sets.items()}, load_predictions(out),
                                    resolve_lexicon(cfg.wheels), cfg.labels, llm)
        except (OSError, ValueError) as e:
            fail(str(e))
        (out / "metrics.json").write_text(json.dumps(result, indent=1) + "\n")
        print(format_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
