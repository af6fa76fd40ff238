"""Check a dataset before a run: ``python -m affectgpt.apps.check path=MANIFEST_OR_DATASET_DIR``.

Accepts a canonical JSONL manifest, an EMER v1 CSV, a MER2025-style release folder
(every ``track2_/track3_<split>_<subset>.csv`` pair in it), a folder of JSONL manifests,
or a YAML data config with a ``sources:`` list (``affectgpt.data.readers.read_source``
entries). Reports rows read/kept/dropped, missing and unreadable media (every clip is
decoded with ``load_media``), duration, label and description statistics and subtitle
coverage. With ``train_config=RUN/config.yaml`` (or the output of ``python train.py ... --cfg``),
a row whose prompt and subtitle leave no room for a target within that run's ``max_length`` is a
problem too, found with the training collator. Exit 0 when nothing is wrong, 1 when rows were
dropped, media is missing or unreadable, or a row is too long; 2 when the dataset itself cannot be read.

``subtitle=auto`` transcribes every readable clip with Whisper (``asr.*``, as ``infer.py``'s; a silent
clip gets an empty subtitle and is listed by name, never invented text), checks the prompt lengths
with the transcripts, and with ``output=NEW.jsonl`` writes a canonical manifest whose subtitles are
the transcripts (``subtitle_source: "asr"``, ``asr``, ``asr_language`` as inference rows carry them;
clips with missing or unreadable media are left out). ``output=`` must not be one of the files read,
and an existing file is replaced only when it is such a manifest (written whole or not at all).
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from affectgpt.apps.cli import Command, UsageError, run
from affectgpt.core.fileio import atomic_write, iter_jsonl
from affectgpt.core.predictions import ASR_FIELDS
from affectgpt.data.manifest import ManifestError, Sample
from affectgpt.data.media import MediaError, load_media
from affectgpt.data.readers import ReadReport, read_emer_csv, read_jsonl, read_mer2025, read_source


def read_target(target: str | Path, language: str = "english") -> tuple[list[Sample], list[ReadReport]]:
    """Samples and read reports for whatever ``target`` is (see the module docstring).
    Raises ``ManifestError`` when it is not a dataset this module knows."""
    target = Path(target)
    if not target.exists():
        raise ManifestError(f"{target}: not found")
    parts: list[tuple[list[Sample], ReadReport]] = []
    if target.is_file():
        suffix = target.suffix.lower()
        if suffix == ".jsonl":
            parts.append(read_jsonl(target))
        elif suffix == ".csv":
            parts.append(read_emer_csv(target))
        elif suffix in (".yaml", ".yml"):
            from omegaconf import OmegaConf

            cfg = OmegaConf.to_container(OmegaConf.load(target), resolve=True)
            sources = cfg.get("sources") if isinstance(cfg, dict) else None
            if not sources:
                raise ManifestError(f"{target}: a data config needs a 'sources:' list of readers")
            for spec in sources:
                parts.append(read_source(spec, base_dir=target.parent))
        else:
            raise ManifestError(f"{target}: expected a .jsonl manifest, an EMER .csv or a .yaml data config")
    else:
        pairs = sorted(
            {
                m.groups()
                for p in target.glob("track[23]_*.csv")
                if (m := re.fullmatch(r"track[23]_([^_]+)_(.+)\.csv", p.name))
            }
        )
        for split, subset in pairs:
            parts.append(read_mer2025(target, subset=subset, split=split, language=language))
        for name in ("gt-eng.csv", "gt-chi.csv"):
            if (target / name).is_file():
                parts.append(read_emer_csv(target / name))
        if not parts:
            parts = [read_jsonl(p) for p in sorted(target.glob("*.jsonl"))]
        if not parts:
            raise ManifestError(f"{target}: no track2_/track3_*.csv, gt-eng.csv, gt-chi.csv or *.jsonl found")
    samples = [s for ss, _ in parts for s in ss]
    return samples, [r for _, r in parts]


@dataclass
class MediaResult:
    name: str
    problem: str | None  # "missing" | "unreadable" | None
    detail: str = ""
    duration: float = 0.0
    has_video: bool = False
    has_audio: bool = False


def check_media(sample: Sample, decode: bool = True) -> MediaResult:
    """Existence of every media file of ``sample`` and, with ``decode``, one ``load_media``."""
    for p in (sample.video, sample.audio):
        if p is not None and not Path(p).is_file():
            return MediaResult(sample.name, "missing", f"{p}: file not found")
    if not decode:
        return MediaResult(sample.name, None, has_video=sample.video is not None, has_audio=sample.audio is not None)
    try:
        m = load_media(sample.video, sample.audio, n_frames=2, frame_size=32, max_audio_seconds=2.0)
    except MediaError as e:
        return MediaResult(sample.name, "unreadable", str(e))
    return MediaResult(sample.name, None, duration=m.duration, has_video=m.has_video, has_audio=m.has_audio)


def prompt_overflows(samples: list[Sample], results: list[MediaResult], train_config: str | Path) -> list[str]:
    """Rows whose prompt (subtitle + the clip's modality tokens) leaves no room for a target within
    the training run's ``data.max_length``, found by the training collator itself (``Collator.encode``
    with the run's tokenizer and token plan; the model is built on the meta device, no weights).
    ``train_config``: a run's or checkpoint's ``config.yaml`` (or its folder), or the output of
    ``python train.py ... --cfg``. Each task the row can be trained on is checked."""
    from omegaconf import OmegaConf

    from affectgpt.core.plan import SAMPLE_RATE
    from affectgpt.data.collate import Collator, SampleError
    from affectgpt.model.build import build_model

    path = Path(train_config)
    path = path / "config.yaml" if path.is_dir() else path
    cfg = OmegaConf.load(path)
    if "model" not in cfg or "data" not in cfg or "max_length" not in cfg.data:
        raise ManifestError(f"{path}: not a training config (expected model: and data.max_length)")
    model = build_model(cfg.model, device="meta", weights="random")
    plan = model.token_plan()
    collator = Collator(model.tokenizer, plan, max_length=int(cfg.data.max_length), train=True)
    problems = []
    for s, r in zip(samples, results, strict=True):
        if r.problem:
            continue  # reported as missing / unreadable already
        n_audio = int(round(r.duration * SAMPLE_RATE)) if r.has_audio and plan.has_audio else 0
        item = {"name": s.name, "subtitle": s.subtitle, "target": "",
                "frames": True if r.has_video and plan.has_vision else None,
                "audio": np.broadcast_to(np.float32(0), (max(n_audio, 1),)) if n_audio else None}
        tasks = [t for t, ok in (("describe", bool(s.description)), ("labels", s.emotions is not None)) if ok]
        for task in tasks or ["labels"]:
            try:
                collator.encode({**item, "task": task})
            except SampleError as e:
                problems.append(f"{e} ({path}); task {task}")
                break
    return problems


def _check_media_decode(sample: Sample) -> MediaResult:
    return check_media(sample, decode=True)


def check_all_media(samples: list[Sample], decode: bool = True, workers: int = 1) -> list[MediaResult]:
    """``check_media`` of every sample, in ``workers`` processes when decoding."""
    if decode and workers > 1 and len(samples) > 1:
        with get_context("spawn").Pool(workers) as pool:
            return pool.map(_check_media_decode, samples, chunksize=16)
    return [check_media(s, decode) for s in samples]


# ----------------------------------------------------------------------------- subtitle=auto
ASR_ROW_KEYS = tuple(k for k in ASR_FIELDS if k != "subtitle")  # what Transcript.fields adds beside the subtitle
MANIFEST_KEYS = {"name", "video", "audio", "subtitle", "description", "emotions", "faces", *ASR_ROW_KEYS}


def transcribe_checked(samples: list[Sample], results: list[MediaResult], asr,
                       encoder_checkpoint: str | Path | None = None) -> tuple[list[Sample], dict]:
    """Every clip whose media is there and readable transcribed (``runtime.asr.transcribe_samples``,
    progress bar); the others keep no subtitle. Returns the samples and the ``asr`` statistics:
    ``transcribed`` (clips with speech), ``silent`` (names: no speech or no audio stream) and
    ``not_transcribed`` (names: missing, unreadable or undecodable media)."""
    from affectgpt.runtime.asr import resolve_asr_model, transcribe_samples

    todo = [i for i, r in enumerate(results) if r.problem is None]
    asr = replace(asr, model=resolve_asr_model(asr.model, encoder_checkpoint))  # named in the report
    done = transcribe_samples([samples[i] for i in todo], asr, progress=True)
    out = [replace(s, subtitle="", extra={k: v for k, v in s.extra.items() if k not in ASR_ROW_KEYS})
           for s in samples]  # a row that is not transcribed carries neither its old subtitle nor old ASR fields
    for i, s in zip(todo, done, strict=True):
        if isinstance(s.extra.get("asr"), dict):  # transcribe_samples' fields (a decode error leaves none)
            out[i] = s
    status = [s.extra["asr"]["asr"] if isinstance(s.extra.get("asr"), dict) else None for s in out]
    stats = {"transcribed": status.count("speech"),
             "silent": [s.name for s, st in zip(out, status, strict=True) if st in ("no speech", "no audio")],
             "not_transcribed": [s.name for s, st in zip(out, status, strict=True) if st is None],
             "model": str(asr.model)}
    return out, stats


def input_files(target: str | Path) -> list[Path]:
    """The files ``read_target`` reads (or may read) for ``target``: what ``output=`` must never be."""
    target = Path(target)
    if target.is_dir():
        return [p for p in target.iterdir() if p.suffix.lower() in (".jsonl", ".csv")]
    files = [target]
    if target.suffix.lower() in (".yaml", ".yml"):
        from omegaconf import OmegaConf

        cfg = OmegaConf.to_container(OmegaConf.load(target), resolve=True)
        for spec in (cfg.get("sources") or []) if isinstance(cfg, dict) else []:
            p = target.parent / str(spec.get("path", "")) if isinstance(spec, dict) else None
            if p is not None:
                files += input_files(p) if p.is_dir() else [p]
    return files


def check_output(out: Path, inputs: list[Path]) -> None:
    """``output=`` may be written: not one of ``inputs``, and either absent or a manifest this command
    wrote (every row a canonical row with ``subtitle_source: "asr"``). ValueError (naming file:line)
    otherwise, before anything is transcribed or written."""
    if out.suffix != ".jsonl":
        raise ValueError(f"output={out}: the manifest written is JSONL; give a path ending in .jsonl")
    for p in inputs:
        if p.exists() and out.resolve() == p.resolve():
            raise ValueError(f"output={out}: is a file of the dataset being checked; give output= a new file")
    if not out.exists():
        return
    if not out.is_file():
        raise ValueError(f"output={out}: exists and is not a file")
    refuse = ("not a manifest written by python -m affectgpt.apps.check subtitle=auto ({}); refusing to "
              "overwrite it: give output= a new file")
    rows = 0
    try:
        for i, rec in iter_jsonl(out):
            extra = sorted(set(rec) - MANIFEST_KEYS)
            if extra or rec.get("subtitle_source") != "asr" or not isinstance(rec.get("asr"), str):
                why = f"keys {extra}" if extra else "no subtitle_source 'asr'"
                raise ValueError(f"{out}:{i}: " + refuse.format(why))
            rows += 1
    except UnicodeDecodeError as e:  # iter_jsonl names the line; this is a binary file before any line
        raise ValueError(f"{out}: " + refuse.format(f"not UTF-8: {e.reason}")) from None
    if rows == 0:
        raise ValueError(f"{out}: " + refuse.format("no rows"))


def write_transcribed(out: Path, samples: list[Sample]) -> int:
    """The canonical manifest of the transcribed samples (media paths relative to ``out``'s folder when
    under it, else absolute), atomically; returns the number of rows."""
    rows = []
    for s in samples:
        fields = s.extra.get("asr")
        if not isinstance(fields, dict):
            continue  # missing or unreadable media: not in the manifest
        absolute = replace(s, video=s.video and Path(s.video).resolve(), audio=s.audio and Path(s.audio).resolve())
        rec = absolute.to_json(out.parent)
        if s.extra.get("faces"):
            rec["faces"] = _rel(s.extra["faces"], out.parent)
        rec.update({k: fields[k] for k in ASR_ROW_KEYS if k in fields})
        rows.append(json.dumps(rec, ensure_ascii=False) + "\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as f:
        f.writelines(rows)
    return len(rows)


def _rel(path, root: Path) -> str:
    p = Path(path).resolve()
    try:
        return str(p.relative_to(root.resolve()))
    except ValueError:
        return str(p)


def check_dataset(samples: list[Sample], reports: list[ReadReport], decode: bool = True, workers: int = 1,
                  train_config: str | Path | None = None, results: list[MediaResult] | None = None,
                  asr: dict | None = None) -> dict:
    """All statistics as a JSON-ready dict; ``ok`` is False when anything is wrong. With
    ``train_config``, rows too long for that run's ``max_length`` are problems (``prompt_overflow``).
    ``results``: the media checks when already made; ``asr``: ``transcribe_checked``'s statistics
    (the samples then carry the transcripts)."""
    if results is None:
        results = check_all_media(samples, decode, workers)
    missing = [r for r in results if r.problem == "missing"]
    unreadable = [r for r in results if r.problem == "unreadable"]
    good = [r for r in results if r.problem is None]
    durations = np.array([r.duration for r in good if r.duration > 0])
    labels = Counter(e for s in samples for e in (s.emotions or ()))
    labelled = [s for s in samples if s.emotions is not None]
    described = [s for s in samples if s.description]
    dropped = sum(r.rows_dropped for r in reports)
    overflow = prompt_overflows(samples, results, train_config) if train_config else []
    return {
        "ok": bool(samples) and not missing and not unreadable and dropped == 0 and not overflow,
        "prompt_overflow": overflow,
        "fit_checked": bool(train_config),
        "reads": [r.to_json() for r in reports],
        "rows_read": sum(r.rows_read for r in reports),
        "samples": len(samples),
        "rows_dropped": dropped,
        "missing_media": [r.detail for r in missing],
        "unreadable_media": [r.detail for r in unreadable],
        "decoded": decode,
        "without_audio": sum(1 for r in good if not r.has_audio),
        "without_video": sum(1 for r in good if not r.has_video),
        "duration_s": (
            {
                "min": float(durations.min()),
                "median": float(np.median(durations)),
                "max": float(durations.max()),
                "total_hours": float(durations.sum() / 3600),
            }
            if durations.size
            else None
        ),
        "labelled": len(labelled),
        "distinct_labels": len(labels),
        "labels_per_sample": float(np.mean([len(s.emotions) for s in labelled])) if labelled else 0.0,
        "top_labels": labels.most_common(10),
        "described": len(described),
        "description_words_mean": float(np.mean([len(s.description.split()) for s in described])) if described else 0.0,
        "subtitled": sum(1 for s in samples if s.subtitle),
        "asr": asr,
    }


def format_report(stats: dict, max_listed: int = 10) -> str:
    """The human-readable report printed by the command line."""
    n = stats["samples"]
    pct = lambda k: f"{stats[k]} ({100 * stats[k] / n:.1f}%)" if n else str(stats[k])  # noqa: E731
    out = [f"samples: {n} kept of {stats['rows_read']} rows read"]
    for r in stats["reads"]:
        out.append(f"  {r['source']}: {r['rows_read']} read, {r['rows_kept']} kept")
        for reason, k in r["dropped"].items():
            out.append(f"    DROPPED {k}: {reason} (e.g. {', '.join(r['examples'][reason])})")
    for key, title in (("missing_media", "MISSING media"), ("unreadable_media", "UNREADABLE media"),
                       ("prompt_overflow", "TOO LONG for max_length")):
        items = stats.get(key, [])
        if items:
            out.append(f"{title}: {len(items)}")
            out += [f"  {x}" for x in items[:max_listed]]
            if len(items) > max_listed:
                out.append(f"  ... and {len(items) - max_listed} more")
    if stats["decoded"]:
        out.append(f"media: {pct('without_audio')} without an audio stream, {pct('without_video')} without video")
    d = stats["duration_s"]
    if d:
        out.append(
            f"duration: min {d['min']:.2f} s, median {d['median']:.2f} s, max {d['max']:.2f} s, "
            f"total {d['total_hours']:.2f} h"
        )
    out.append(
        f"labels: {pct('labelled')} labelled, {stats['distinct_labels']} distinct, "
        f"{stats['labels_per_sample']:.2f} per sample; top: "
        + ", ".join(f"{k} {v}" for k, v in stats["top_labels"])
    )
    out.append(f"descriptions: {pct('described')}, {stats['description_words_mean']:.1f} words on average")
    out.append(f"subtitles: {pct('subtitled')} non-empty")
    a = stats.get("asr")
    if a:
        out.append(f"subtitle=auto ({a['model']}): {a['transcribed']} of {n} clips transcribed, "
                   f"{len(a['silent'])} silent (empty subtitle), {len(a['not_transcribed'])} not transcribed "
                   "(missing or unreadable media)")
        for key, title in (("silent", "silent"), ("not_transcribed", "not transcribed")):
            if a[key]:
                listed = a[key][:max_listed] + ([f"... and {len(a[key]) - max_listed} more"]
                                                if len(a[key]) > max_listed else [])
                out.append(f"  {title}: {', '.join(listed)}")
    out.append("OK" if stats["ok"] else "PROBLEMS FOUND: fix the rows and files listed above before training")
    return "\n".join(out)


CHECK = Command(prog="python -m affectgpt.apps.check", config="check", doc=__doc__,
                verbatim=("path", "json", "train_config", "output"))


def main(argv: list[str] | None = None) -> int:
    """Exit 0 clean, 1 problems found, 2 unreadable dataset or bad arguments."""
    return run(CHECK, _check_command, argv)


def _check_command(cfg) -> int:
    if cfg.language not in ("english", "chinese"):
        raise UsageError(f"language={cfg.language}: expected english or chinese")
    if int(cfg.workers) < 1:
        raise UsageError(f"workers={cfg.workers}: expected at least 1")
    try:
        samples, reports = read_target(cfg.path, cfg.language)
    except (ManifestError, ValueError) as e:
        raise UsageError(str(e)) from None
    if cfg.get("train_config") and not bool(cfg.decode):
        raise UsageError("train_config= needs decode=true (the audio length sets the number of audio tokens)")
    auto = cfg.subtitle == "auto"
    output = Path(cfg.output) if cfg.get("output") else None
    if output is not None and not auto:
        raise UsageError("output= writes the transcribed manifest: it needs subtitle=auto")
    lock = None
    if auto:
        from affectgpt.runtime.asr import asr_config

        try:
            asr = asr_config(cfg.get("asr"))
        except (ValueError, TypeError) as e:
            raise UsageError(str(e)) from None
        from affectgpt.runtime.open import ArtifactError, resolve_device  # lazy: torch only for subtitle=auto

        try:
            asr.device = resolve_device(str(cfg.device))
        except ArtifactError as e:
            raise UsageError(str(e)) from None
        if output is not None:  # refused before anything is transcribed; one job on it
            from affectgpt.core.runlock import FolderLocked, acquire

            try:
                check_output(output, input_files(cfg.path))
                lock = acquire(output, "python -m affectgpt.apps.check", is_file=True)
            except (ValueError, FolderLocked) as e:
                raise UsageError(str(e)) from None
    try:
        results = check_all_media(samples, decode=bool(cfg.decode), workers=int(cfg.workers))
        asr_stats = None
        if auto:
            try:
                samples, asr_stats = transcribe_checked(samples, results, asr,
                                                        _encoder_checkpoint(cfg.get("train_config")))
            except (OSError, ValueError) as e:
                raise UsageError(f"subtitle=auto: {e}") from None
        stats = check_dataset(samples, reports, decode=bool(cfg.decode), workers=int(cfg.workers),
                              train_config=cfg.get("train_config"), results=results, asr=asr_stats)
        print(format_report(stats))
        if output is not None:
            n = write_transcribed(output, samples)
            print(f"wrote {output}: {n} rows with the transcripts as subtitles (subtitle_source: asr)")
    finally:
        if lock is not None:
            lock.release()
    if cfg.json:
        out = Path(cfg.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(stats, indent=1, ensure_ascii=False) + "\n")
    return 0 if stats["ok"] else 1


def _encoder_checkpoint(train_config) -> Path | None:
    """``asr.model=auto`` picks the training run's audio encoder when it is a released Whisper."""
    if not train_config:
        return None
    from omegaconf import OmegaConf

    from affectgpt.runtime.asr import encoder_checkpoint_named

    path = Path(train_config)
    cfg = OmegaConf.load(path / "config.yaml" if path.is_dir() else path)
    return encoder_checkpoint_named(OmegaConf.select(cfg, "model.audio.model", default=None))


if __name__ == "__main__":
    sys.exit(main())
