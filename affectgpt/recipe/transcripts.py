"""``data.subtitle=auto`` for training and feature extraction: every clip's subtitle is its Whisper
transcript (:mod:`affectgpt.runtime.asr`, options ``data.asr.*``), made once per clip and cached.

The cache is ``transcripts.jsonl`` beside the feature cache (``features.cache_dir``), or in
``output_dir`` when there is none. One row per clip::

    {"name", "media": absolute path of the file transcribed, "size", "mtime_ns",
     "asr_identity": hash of the ASR weights' sha256 and options (runtime.asr.asr_identity),
     "subtitle", "subtitle_source": "asr", "asr": "speech" | "no speech" | "no audio", "asr_language"?}

A row is reused only when the clip's name, media path, size, modification time and the ASR identity
all match; any other row (the clip was re-encoded, another ASR model or option) is transcribed again
and replaced, and the log says how many. A file that is not such a cache (another program's rows, not
JSONL) is refused, never overwritten. No speech gives an empty subtitle, never invented text; a clip
whose audio cannot be decoded gets an empty subtitle and no row (training counts it as a bad sample).
The file is rewritten whole (atomically) when rows were added, by the main process only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import replace
from pathlib import Path

from affectgpt.core.errors import InputError
from affectgpt.core.fileio import atomic_write, iter_jsonl
from affectgpt.core.predictions import ASR_FIELDS
from affectgpt.data.manifest import Sample
from affectgpt.data.readers import Source
from affectgpt.data.splits import TrainSplit
from affectgpt.runtime.asr import (
    AsrConfig,
    asr_config,
    asr_identity,
    encoder_checkpoint_of,
    resolve_asr_model,
    transcribe_samples,
)

log = logging.getLogger("affectgpt.recipe.transcripts")
TRANSCRIPTS = "transcripts.jsonl"
KEY_FIELDS = ("name", "media", "size", "mtime_ns", "asr_identity")
ROW_KEYS = {*KEY_FIELDS, *ASR_FIELDS}


class TranscriptCacheError(InputError, ValueError):
    """``transcripts.jsonl`` is not a transcript cache of this program (the message names file:line)."""


def transcripts_path(cfg) -> Path:
    """Where a run's transcripts are cached: beside the feature cache, else in ``output_dir``."""
    folder = cfg.features.get("cache_dir") if cfg.get("features") is not None else None
    return Path(folder or cfg.output_dir) / TRANSCRIPTS


def media_key(sample: Sample) -> dict | None:
    """The file a clip's transcript comes from (its audio file, else its video) and its size and
    modification time; None when the file is not there."""
    p = sample.audio or sample.video
    try:
        st = os.stat(p)
    except (OSError, TypeError):
        return None
    return {"media": str(Path(p).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def identity_hash(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def read_transcripts(path: Path) -> dict[tuple, dict]:
    """The cache's rows by (name, media); TranscriptCacheError when ``path`` holds anything else."""
    path = Path(path)
    if not path.exists():
        return {}
    if not path.is_file():
        raise TranscriptCacheError(f"{path}: exists and is not a file")
    rows = {}
    refuse = "not a transcript cache of data.subtitle=auto ({}); refusing to use or overwrite it: move it away"
    for i, rec in iter_jsonl(path, error=TranscriptCacheError):
        missing = [k for k in (*KEY_FIELDS, "subtitle", "asr") if k not in rec]
        extra = sorted(set(rec) - ROW_KEYS)
        if missing or extra or rec.get("subtitle_source") != "asr":
            why = f"missing {missing}" if missing else f"keys {extra}" if extra else "subtitle_source is not 'asr'"
            raise TranscriptCacheError(f"{path}:{i}: " + refuse.format(why))
        rows[(rec["name"], rec["media"])] = rec
    return rows


def auto_subtitles(samples: list[Sample], path: Path, asr: AsrConfig, encoder_checkpoint=None, write: bool = True,
                   progress: bool = False) -> tuple[list[Sample], dict]:
    """``samples`` with their transcripts as subtitles (``extra["asr"]``: the row fields), from the
    cache at ``path`` where a row is fresh, else transcribed (and, with ``write``, added to the cache).
    A clip listed twice (in two splits) is transcribed once. Returns the samples and counts: ``reused``
    (samples read from the cache), ``transcribed`` (clips), ``stale`` (rows replaced),
    ``silent`` (names) and ``failed`` (names whose media did not decode)."""
    path = Path(path)
    cached = read_transcripts(path)  # refused before the ASR model loads
    spec = resolve_asr_model(asr.model, encoder_checkpoint)
    ident = identity_hash(asr_identity(spec, asr))
    out: list[Sample | None] = [None] * len(samples)
    todo, keys, first, stale, reused = [], {}, {}, 0, 0  # first: (name, media) -> the index transcribed for it
    for i, s in enumerate(samples):
        key = media_key(s)
        row = cached.get((s.name, key["media"])) if key else None
        if row is not None and all(row[k] == v for k, v in {**key, "asr_identity": ident}.items()):
            fields = {k: row[k] for k in ASR_FIELDS if k in row}
            out[i] = replace(s, subtitle=row["subtitle"], extra={**s.extra, "asr": fields})
            reused += 1
        elif key is not None and (s.name, key["media"]) in first:
            keys[i] = key  # the same clip twice (in two splits): transcribed once
        else:
            stale += row is not None
            todo.append(i)
            keys[i] = key
            if key is not None:
                first[(s.name, key["media"])] = i
    fresh = transcribe_samples([samples[i] for i in todo], replace(asr, model=spec), progress=progress)
    new_rows, failed = [], []
    for i, s in zip(todo, fresh, strict=True):
        fields = s.extra.get("asr")
        if not isinstance(fields, dict):  # transcribe_samples leaves a clip that does not decode as it was
            failed.append(s.name)
            out[i] = replace(s, subtitle="")
            continue
        out[i] = s
        if keys[i] is not None:
            new_rows.append({"name": s.name, **keys[i], "asr_identity": ident, **fields})
    for i, s in enumerate(samples):
        if out[i] is None:  # a repeat of a clip transcribed above
            twin = out[first[(s.name, keys[i]["media"])]]
            out[i] = replace(s, subtitle=twin.subtitle, extra={**s.extra, **({"asr": twin.extra["asr"]}
                                                                             if "asr" in twin.extra else {})})
    if write and new_rows:
        merged = {k: r for k, r in cached.items() if r["asr_identity"] == ident}  # another identity's rows: stale
        merged.update({(r["name"], r["media"]): r for r in new_rows})
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in merged.values())
    status = [s.extra["asr"].get("asr") if isinstance(s.extra.get("asr"), dict) else None for s in out]
    counts = {"reused": reused, "transcribed": len(todo) - len(failed), "stale": stale,
              "speech": len({s.name for s, st in zip(out, status, strict=True) if st == "speech"}),
              "silent": list(dict.fromkeys(s.name for s, st in zip(out, status, strict=True)
                                           if st in ("no speech", "no audio"))),
              "failed": failed, "model": spec, "path": str(path)}
    return out, counts


def describe(counts: dict) -> str:
    """One log line for ``auto_subtitles``' counts."""
    silent = counts["silent"]
    named = ": " + ", ".join(silent[:10]) + (" ..." if len(silent) > 10 else "") if silent else ""
    text = (f"data.subtitle=auto ({counts['model']}): {counts['speech']} clips with speech, {len(silent)} silent "
            f"(empty subtitle{named}); "
            f"{counts['reused']} samples read from {counts['path']}, {counts['transcribed']} clips transcribed")
    if counts["stale"]:
        text += f" ({counts['stale']} cached rows were stale: media or ASR model changed)"
    if counts["failed"]:
        text += f"; {len(counts['failed'])} did not decode: {', '.join(counts['failed'][:5])}"
    return text


def clip_key(s: Sample) -> tuple:
    """One clip of a split, whichever samples (tasks, epochs) repeat it."""
    return s.name, str(s.video), str(s.audio)


def with_transcripts(split: TrainSplit, done: list[Sample]) -> TrainSplit:
    """``split`` with every pool sample (and the same sample in its sources) replaced by its transcribed one."""
    by = {clip_key(s): s for s in done}
    sub = lambda s: by.get(clip_key(s), s)  # noqa: E731
    sources = None if split.sources is None else [
        Source(src.name, [sub(s) for s in src.samples], src.ratio) for src in split.sources]
    return TrainSplit([sub(s) for s in split.pool], sources, split.seed, split.epoch_size)


def transcribe_splits(cfg, model, splits: dict[str, list[Sample]], state) -> dict[str, list[Sample]]:
    """Every split's samples with transcripts as subtitles: the main process transcribes what the
    cache lacks and writes it, then the others read it (``state``: an Accelerator or PartialState)."""
    asr = asr_config(cfg.data.get("asr"))
    asr.device = str(state.device)
    names = list(splits)
    flat = [s for n in names for s in splits[n]]
    with state.main_process_first():
        done, counts = auto_subtitles(flat, transcripts_path(cfg), asr, encoder_checkpoint_of(model),
                                      write=state.is_main_process, progress=state.is_main_process)
    if state.is_main_process:
        log.info("%s", describe(counts))
    out, at = {}, 0
    for n in names:
        out[n] = done[at : at + len(splits[n])]
        at += len(splits[n])
    return out
