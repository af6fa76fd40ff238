"""Readers for the authors' dataset releases and the canonical manifest, plus mixtures.

Every reader returns ``(samples, report)``. The report counts rows read and kept and, for
each row dropped, why; a dropped row is never silently replaced. Layouts (see
docs/notes official-affectgpt): EMER v1 ``gt-eng.csv`` (names, emotions, subtitles,
reasons); MER2025 / MER-Caption+ / OV-MERD ``track2_<split>_<subset>.csv`` (name,
openset), ``track3_<split>_<subset>.csv`` (name, reason), ``subtitle_chieng.csv`` (name,
chinese, english), ``video/NAME.mp4``, optional ``audio/NAME.wav``.
"""

from __future__ import annotations

import ast
import csv
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from affectgpt.core.fileio import iter_jsonl
from affectgpt.data.manifest import ManifestError, Sample, sample_from_record

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".flv")
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".m4a")
LANGUAGES = ("english", "chinese")


@dataclass
class ReadReport:
    """What a reader did: rows read, rows kept, drops by reason (with example names) and
    notes on kept rows that lack an optional field (e.g. no subtitle)."""

    source: str
    rows_read: int = 0
    rows_kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def drop(self, reason: str, name: str) -> None:
        self.dropped[reason] += 1
        self.examples.setdefault(reason, [])
        if len(self.examples[reason]) < 5:
            self.examples[reason].append(name)

    def note(self, what: str) -> None:
        self.notes[what] += 1

    @property
    def rows_dropped(self) -> int:
        return sum(self.dropped.values())

    def __str__(self) -> str:
        lines = [f"{self.source}: {self.rows_read} rows read, {self.rows_kept} kept, {self.rows_dropped} dropped"]
        for reason, n in self.dropped.most_common():
            lines.append(f"  dropped {n}: {reason} (e.g. {', '.join(self.examples[reason])})")
        for what, n in self.notes.most_common():
            lines.append(f"  kept {n} {what}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "source": self.source,
            "rows_read": self.rows_read,
            "rows_kept": self.rows_kept,
            "dropped": dict(self.dropped),
            "notes": dict(self.notes),
            "examples": self.examples,
        }


def parse_label_list(text: str | None) -> tuple[str, ...]:
    """``"['happy', 'excited']"``, ``"happy, excited"`` or ``"happy"`` → labels, lower-cased.
    Empty (or ``[]``) means neutral, as in the MER2025 track-2 files."""
    text = (text or "").strip()
    if text.startswith("["):
        try:
            items = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            items = text.strip("[]").replace("'", "").replace('"', "").split(",")
    else:
        items = text.split(",")
    labels = tuple(dict.fromkeys(str(x).strip().lower() for x in items if str(x).strip()))
    return labels or ("neutral",)


def read_csv_rows(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """Rows of a CSV with a header (BOM tolerated) as ``(line, row)``; raises
    ``ManifestError`` when the file is missing or lacks a required column."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: file not found")
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in required if c not in columns]
        if missing:
            raise ManifestError(f"{path}: missing column(s) {missing}; found {columns}")
        reader.fieldnames = columns
        return [(reader.line_num, {k: (v or "").strip() for k, v in row.items() if k}) for row in reader]


def find_media(folder: Path | None, name: str, extensions: tuple[str, ...]) -> Path | None:
    """``folder/name.ext`` for the first extension that exists; the first extension's path
    when none does (so the checker reports it missing); None without a folder."""
    if folder is None:
        return None
    for ext in extensions:
        p = folder / f"{name}{ext}"
        if p.exists():
            return p
    return folder / f"{name}{extensions[0]}"


def _finish(samples: list[Sample], report: ReadReport, drop_missing_media: bool) -> tuple[list[Sample], ReadReport]:
    kept = []
    for s in samples:
        media = [p for p in (s.video, s.audio) if p is not None]
        if drop_missing_media and not any(p.is_file() for p in media):
            report.drop("media file missing", s.name)
            continue
        if not s.subtitle:
            report.note("without a subtitle")
        if s.emotions is None:
            report.note("without labels")
        if s.description is None:
            report.note("without a description")
        kept.append(s)
    report.rows_kept = len(kept)
    return kept, report


def read_emer_csv(
    path: str | Path,
    video_dir: str | Path | None = None,
    audio_dir: str | Path | None = None,
    drop_missing_media: bool = False,
) -> tuple[list[Sample], ReadReport]:
    """EMER v1 (``gt-eng.csv`` / ``gt-chi.csv``: names, emotions, subtitles, reasons).
    Videos default to ``<csv folder>/video/NAME.<ext>``."""
    path = Path(path)
    vdir = Path(video_dir) if video_dir is not None else path.parent / "video"
    adir = Path(audio_dir) if audio_dir is not None else None
    report = ReadReport(str(path))
    samples, seen = [], set()
    for line, row in read_csv_rows(path, ("names", "emotions", "subtitles", "reasons")):
        report.rows_read += 1
        name = row["names"]
        if not name:
            report.drop("empty name", f"line {line}")
            continue
        if name in seen:
            report.drop("duplicate name", name)
            continue
        seen.add(name)
        audio = find_media(adir, name, AUDIO_EXTENSIONS)
        samples.append(
            Sample(
                name=name,
                video=find_media(vdir, name, VIDEO_EXTENSIONS),
                audio=audio if audio is not None and audio.exists() else None,
                subtitle=row["subtitles"],
                description=row["reasons"] or None,
                emotions=parse_label_list(row["emotions"]),
            )
        )
    return _finish(samples, report, drop_missing_media)


def read_track_csvs(
    labels_csv: str | Path | None,
    descriptions_csv: str | Path | None,
    subtitles_csv: str | Path | None = None,
    video_dir: str | Path | None = None,
    audio_dir: str | Path | None = None,
    language: str = "english",
    drop_missing_media: bool = False,
    source: str | None = None,
) -> tuple[list[Sample], ReadReport]:
    """Join a labels file (name, openset) and a descriptions file (name, reason; or name,
    english, chinese as in EMER v2) on ``name``; the subtitle comes from ``subtitles_csv``
    in ``language``. A name in either file is a row; one with neither labels nor a
    description is dropped. Audio is used only where ``audio_dir/NAME.wav`` exists."""
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")
    if labels_csv is None and descriptions_csv is None:
        raise ValueError("give a labels CSV, a descriptions CSV or both")
    report = ReadReport(source or str(labels_csv or descriptions_csv))
    order: dict[str, None] = {}  # names in first-seen order across both files
    labels: dict[str, tuple[str, ...]] = {}
    descriptions: dict[str, str] = {}

    def collect(path: Path, rows, take, store: dict) -> None:
        for line, row in rows:
            name = row["name"]
            if not name:
                report.rows_read += 1
                report.drop(f"empty name in {path.name}", f"line {line}")
            elif name in store:
                report.rows_read += 1
                report.drop(f"duplicate name in {path.name}", name)
            else:
                store[name] = take(row)
                order.setdefault(name)

    if labels_csv is not None:
        rows = read_csv_rows(Path(labels_csv), ("name", "openset"))
        collect(Path(labels_csv), rows, lambda r: parse_label_list(r["openset"]), labels)
    if descriptions_csv is not None:
        rows = read_csv_rows(Path(descriptions_csv), ("name",))
        text_col = "reason" if not rows or "reason" in rows[0][1] else language
        if rows and text_col not in rows[0][1]:
            raise ManifestError(
                f"{descriptions_csv}: missing column 'reason' (or '{language}'); found {list(rows[0][1])}"
            )
        collect(Path(descriptions_csv), rows, lambda r: r[text_col], descriptions)
    report.rows_read += len(order)
    subtitles: dict[str, str] = {}
    if subtitles_csv is not None:
        for _, row in read_csv_rows(Path(subtitles_csv), ("name", language)):
            subtitles.setdefault(row["name"], row[language])
    vdir = Path(video_dir) if video_dir is not None else None
    adir = Path(audio_dir) if audio_dir is not None else None
    samples = []
    for name in order:
        desc = descriptions.get(name) or None
        if name not in labels and desc is None:
            report.drop("neither labels nor a description", name)
            continue
        audio = find_media(adir, name, AUDIO_EXTENSIONS)
        video = find_media(vdir, name, VIDEO_EXTENSIONS)
        if video is None and (audio is None or not audio.exists()):
            report.drop("no video folder and no audio file", name)
            continue
        samples.append(
            Sample(
                name=name,
                video=video,
                audio=audio if audio is not None and audio.exists() else None,
                subtitle=subtitles.get(name, ""),
                description=desc,
                emotions=labels.get(name),
            )
        )
    return _finish(samples, report, drop_missing_media)


def read_mer2025(
    root: str | Path,
    subset: str = "mercaptionplus",
    split: str = "train",
    language: str = "english",
    drop_missing_media: bool = False,
) -> tuple[list[Sample], ReadReport]:
    """The MER2025 release folder: ``track2_<split>_<subset>.csv``,
    ``track3_<split>_<subset>.csv`` (either may be absent, not both),
    ``subtitle_chieng.csv``, ``video/``, optional ``audio/``. ``subset`` is
    ``mercaptionplus`` (MER-Caption+) or ``ovmerd``."""
    root = Path(root)
    t2, t3 = root / f"track2_{split}_{subset}.csv", root / f"track3_{split}_{subset}.csv"
    if not t2.is_file() and not t3.is_file():
        raise ManifestError(f"{root}: neither {t2.name} nor {t3.name} found")
    subs = root / "subtitle_chieng.csv"
    return read_track_csvs(
        t2 if t2.is_file() else None,
        t3 if t3.is_file() else None,
        subs if subs.is_file() else None,
        video_dir=root / "video",
        audio_dir=root / "audio" if (root / "audio").is_dir() else None,
        language=language,
        drop_missing_media=drop_missing_media,
        source=f"{root} [{split}_{subset}]",
    )


def read_jsonl(path: str | Path, strict: bool = False) -> tuple[list[Sample], ReadReport]:
    """The canonical manifest. ``strict`` raises on the first bad row (as
    ``read_manifest``); otherwise bad rows are dropped and counted by cause."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    report = ReadReport(str(path))
    samples, seen = [], set()

    def drop(lineno: int, e: ManifestError) -> None:
        report.drop(_cause_kind(str(e).removeprefix(f"{path}:{lineno}: ")), f"line {lineno}")

    def bad_line(lineno: int, e: ManifestError) -> None:
        report.rows_read += 1
        drop(lineno, e)

    for lineno, rec in iter_jsonl(path, error=ManifestError, on_bad=None if strict else bad_line):
        report.rows_read += 1
        where = f"{path}:{lineno}"
        try:
            s = sample_from_record(rec, path.parent, where)
            if s.name in seen:
                raise ManifestError(f"{where}: duplicate name {s.name!r}")
        except ManifestError as e:
            if strict:
                raise
            drop(lineno, e)
            continue
        seen.add(s.name)
        samples.append(s)
    return _finish(samples, report, False)


def _cause_kind(cause: str) -> str:
    """Group row errors by kind (no sample names or values) so that counts add up per cause."""
    cause = re.sub(r"^sample '[^']*':? ?", "", cause)
    cause = re.sub(r"^duplicate name .*", "duplicate name", cause)
    cause = re.sub(r"^not valid JSON.*", "not valid JSON", cause)
    return re.sub(r", found .*$", "", cause)


def read_source(spec: dict, base_dir: str | Path = ".") -> tuple[list[Sample], ReadReport]:
    """One data source from a config entry: ``{"format": "jsonl" | "emer_csv" | "mer2025"
    | "tracks", "path": ..., other reader arguments}``; relative paths are under
    ``base_dir``. ``ratio`` (used by ``mix_epoch``) is ignored here."""
    spec = dict(spec)
    fmt = spec.pop("format", None)
    spec.pop("ratio", None)
    spec.pop("name", None)
    base = Path(base_dir)

    def p(key):
        v = spec.pop(key, None)
        return None if v is None else (Path(v) if Path(v).is_absolute() else base / v)

    if fmt == "jsonl":
        return read_jsonl(p("path"), **spec)
    if fmt == "emer_csv":
        return read_emer_csv(p("path"), video_dir=p("video_dir"), audio_dir=p("audio_dir"), **spec)
    if fmt == "mer2025":
        return read_mer2025(p("path"), **spec)
    if fmt == "tracks":
        return read_track_csvs(
            p("labels_csv"),
            p("descriptions_csv"),
            p("subtitles_csv"),
            video_dir=p("video_dir"),
            audio_dir=p("audio_dir"),
            **spec,
        )
    raise ValueError(f"unknown data source format {fmt!r}; expected jsonl, emer_csv, mer2025 or tracks")


@dataclass
class Source:
    name: str
    samples: list[Sample]
    ratio: float = 1.0


def epoch_counts(sources: list[Source], epoch_size: int) -> list[int]:
    """Samples per source for one epoch: ratios normalised to sum 1, times ``epoch_size``,
    rounded by largest remainder so the counts add up exactly."""
    ratios = np.array([s.ratio for s in sources], dtype=float)
    if (ratios < 0).any() or ratios.sum() <= 0:
        raise ValueError(f"mixture ratios must be >= 0 with a positive sum, got {ratios.tolist()}")
    for s in sources:
        if s.ratio > 0 and not s.samples:
            raise ValueError(f"source {s.name!r} has ratio {s.ratio} but no samples")
    exact = ratios / ratios.sum() * epoch_size
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: epoch_size - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


def mix_epoch(sources: list[Source], epoch: int, seed: int, epoch_size: int | None = None) -> list[Sample]:
    """The sample list for one epoch of a mixture, the same for the same (sources, epoch,
    seed). Each source gives its share of ``epoch_size`` (default: all samples of all
    sources): a fresh permutation per epoch, repeated when the share exceeds the source
    (upsampling) and cut when it is smaller (downsampling, so successive epochs see
    different samples). The epoch list is then shuffled."""
    if epoch_size is None:
        epoch_size = sum(len(s.samples) for s in sources)
    rng = np.random.default_rng([seed, epoch])
    picked: list[Sample] = []
    for src, n in zip(sources, epoch_counts(sources, epoch_size), strict=False):
        if n == 0:
            continue
        size = len(src.samples)
        order = np.concatenate([rng.permutation(size) for _ in range(-(-n // size))])[:n]
        picked.extend(src.samples[i] for i in order)
    return [picked[i] for i in rng.permutation(len(picked))]
