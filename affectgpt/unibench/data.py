"""Readers of the nine MER-UniBench test sets: the authors' ``<name>-process`` folders and plain JSONL.

A ``*-process`` folder holds a label file (``label*.npz`` of pickled dicts, or OV-MERD+'s
``ovlabel.csv``), a subtitle CSV, a video and an audio sub-folder and ``openface_face/`` crops;
the table ``LAYOUTS`` says which per set. The label ``.npz`` files are read with a restricted
unpickler that admits only numpy's array reconstruction and plain containers. The test split is
cut as upstream and its size is checked against the published one. ``<set>_test.jsonl`` rows
``{"name", "label"|"valence"|"openset", "video"?, "audio"?, "subtitle"?, "faces"?}`` are the
plain form (media paths relative to the file). Torch-free.
"""
from __future__ import annotations

import csv
import io
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from affectgpt.core.config import check_choice
from affectgpt.core.errors import InputError
from affectgpt.core.fileio import iter_jsonl
from affectgpt.data.manifest import Sample
from affectgpt.data.media import face_file
from affectgpt.eval.parsing import parse_labels
from affectgpt.unibench.sets import BY_NAME


class UnsafePickleError(InputError, ValueError):
    """A label file whose pickle references something other than numpy arrays and plain containers."""


@dataclass(frozen=True)
class Layout:
    """Where one set's files are inside the dataset root, and how its gold and split are read."""

    folder: str
    label_file: str
    label_key: str | None  # npz member; None for ovlabel.csv
    gold: str  # label | label_index | valence | openset
    subtitle_file: str
    subtitle_column: str
    video_dir: str
    audio_dir: str
    size: int  # the published test-split size
    classes: tuple[str, ...] = ()  # index -> name for label_index sets
    session5: bool = False  # IEMOCAP: the test split is Session 5 of the whole corpus


LAYOUTS = {
    "mer2023": Layout("mer2023-dataset-process", "label-6way.npz", "test1_corpus", "label",
                      "transcription-engchi-polish.csv", "english", "video", "audio", 411),
    "mer2024": Layout("mer2024-dataset-process", "label-6way.npz", "test1_corpus", "label",
                      "transcription_merge.csv", "chinese", "video", "audio", 1169),
    "meld": Layout("meld-process", "label.npz", "test_corpus", "label_index", "transcription-engchi-polish.csv",
                   "english", "subvideo", "subaudio", 2610,
                   ("anger", "joy", "sadness", "neutral", "disgust", "fear", "surprise")),
    "iemocapfour": Layout("iemocap-process", "label_4way.npz", "whole_corpus", "label_index",
                          "transcription-engchi-polish.csv", "english", "subvideo-tgt", "subaudio", 1241,
                          ("happy", "sad", "neutral", "anger"), session5=True),
    "cmumosi": Layout("cmumosi-process", "label.npz", "test_corpus", "valence", "transcription-engchi-polish.csv",
                      "english", "subvideo", "subaudio", 686),
    "cmumosei": Layout("cmumosei-process", "label.npz", "test_corpus", "valence", "transcription-engchi-polish.csv",
                       "english", "subvideo_new", "subaudio", 4659),
    "sims": Layout("sims-process", "label.npz", "test_corpus", "valence", "transcription-engchi-polish.csv",
                   "english", "video", "audio", 457),
    "simsv2": Layout("simsv2-process", "label.npz", "test_corpus", "valence", "transcription-engchi-polish.csv",
                     "english", "video_new", "audio", 1034),
    "ovmerdplus": Layout("ovmerdplus-process", "ovlabel.csv", None, "openset", "subtitle_eng.csv", "sentence",
                         "video", "audio", 532),
}
VIDEO_SUFFIXES = (".mp4", ".avi")


@dataclass
class TestSet:
    """One set's gold (name -> label / valence / label list) and its samples (media paths, subtitle, faces)."""

    name: str
    source: str
    gold: dict
    samples: list[Sample] = field(default_factory=list)


# ----------------------------------------------------------------------------- label files
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "list"), ("builtins", "dict"), ("builtins", "tuple"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, f, where: str):
        super().__init__(f, encoding="latin1")
        self.where = where

    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise UnsafePickleError(f"{self.where}: refusing to unpickle {module}.{name}: label files may hold only "
                                    "numpy arrays and plain containers")
        return super().find_class(module, name)


def load_label_npz(path) -> dict[str, object]:
    """Every member of an ``.npz`` as a Python object (object arrays unpickled with the restricted unpickler).

    A 0-d object array becomes the object it holds (the authors store one dict per split).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: label file not found")
    out: dict[str, object] = {}
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ValueError(f"{path}: not an .npz (zip) file") from None
    with zf:
        for member in zf.namelist():
            key = member.removesuffix(".npy")
            where = f"{path}[{key}]"
            f = io.BytesIO(zf.read(member))
            try:
                version = np.lib.format.read_magic(f)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                _, _, dtype = read_header(f)
            except ValueError as e:
                raise ValueError(f"{where}: not a .npy array ({e})") from None
            if dtype.hasobject:
                try:
                    value = _RestrictedUnpickler(f, where).load()
                except UnsafePickleError:
                    raise
                except Exception as e:  # a truncated or garbled pickle
                    raise ValueError(f"{where}: unreadable pickle ({type(e).__name__}: {e})") from None
            else:
                f.seek(0)
                value = np.load(f, allow_pickle=False)
            if isinstance(value, np.ndarray) and value.dtype.hasobject and value.shape == ():
                value = value.item()
            out[key] = value
    return out


def _split_dict(path: Path, key: str) -> dict:
    members = load_label_npz(path)
    if key not in members:
        raise ValueError(f"{path}: no {key!r} member (found {sorted(members)})")
    value = members[key]
    if not isinstance(value, dict):
        raise ValueError(f"{path}[{key}]: expected a dict name -> {{'emo', 'val'}}, found {type(value).__name__}")
    return value


def _gold_value(layout: Layout, rec, where: str):
    if not isinstance(rec, dict):
        raise ValueError(f"{where}: expected a dict with 'emo'/'val', found {type(rec).__name__}")
    if layout.gold == "valence":
        return float(rec["val"])
    emo = rec.get("emo")
    if layout.gold == "label_index":
        idx = int(emo)
        if not 0 <= idx < len(layout.classes):
            raise ValueError(f"{where}: label index {idx} outside 0..{len(layout.classes) - 1}")
        return layout.classes[idx]
    return str(emo).strip().lower()


def _check_size(n: int, layout: Layout, set_name: str, where: Path, check: bool) -> None:
    if check and n != layout.size:
        raise ValueError(f"{where}: {set_name} test split has {n} samples, expected {layout.size} "
                         "(check_sizes=false or --no-check-sizes to accept a subset)")


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found")
    with path.open(newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def _gold_from_process(folder: Path, set_name: str, layout: Layout, check_sizes: bool) -> dict:
    label_path = folder / layout.label_file
    if layout.label_key is None:  # OV-MERD+: names from the subtitle CSV, labels from ovlabel.csv
        labels = {r["name"]: r.get("openset") for r in _read_csv(label_path)}
        names = [r["name"] for r in _read_csv(folder / layout.subtitle_file)]
        missing = [n for n in names if n not in labels]
        if missing:
            raise ValueError(f"{label_path}: no openset for {len(missing)} names of {layout.subtitle_file}, "
                             f"e.g. {missing[:3]}")
        gold = {n: parse_labels(labels[n]) for n in names}
    else:
        corpus = _split_dict(label_path, layout.label_key)
        if layout.session5:
            corpus = {k: v for k, v in corpus.items() if len(k) > 4 and k[4] == "5"}
        gold = {str(k): _gold_value(layout, v, f"{label_path}[{layout.label_key}][{k}]") for k, v in corpus.items()}
    _check_size(len(gold), layout, set_name, label_path, check_sizes)
    return gold


def _media(folder: Path, sub: str, name: str, suffixes: tuple[str, ...]) -> Path:
    """The first existing ``folder/sub/name<suffix>``, else the first candidate (it fails loudly when read)."""
    candidates = [folder / sub / f"{name}{s}" for s in suffixes]
    return next((p for p in candidates if p.is_file()), candidates[0])


def face_path(folder: Path, name: str) -> Path:
    """``openface_face/NAME.npy`` (flat) or the MER2025 release's ``openface_face/NAME/NAME.npy``."""
    return face_file(name, folder / "video" / f"{name}.mp4")


def read_process_set(root, set_name: str, check_sizes: bool = True, media: bool = True) -> TestSet:
    """One set from ``root/<layout.folder>``: gold, and (``media``) samples with video, audio, subtitle, faces."""
    check_choice("set", set_name, LAYOUTS)
    layout = LAYOUTS[set_name]
    folder = Path(root) / layout.folder
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: {set_name} folder not found")
    gold = _gold_from_process(folder, set_name, layout, check_sizes)
    test = TestSet(set_name, str(folder), gold)
    if not media:
        return test
    sub_path = folder / layout.subtitle_file
    rows = _read_csv(sub_path)
    if rows and layout.subtitle_column not in rows[0]:
        raise ValueError(f"{sub_path}: no column {layout.subtitle_column!r} (columns: {list(rows[0])})")
    subtitles = {r["name"]: (r.get(layout.subtitle_column) or "").strip() for r in rows}
    for name in gold:
        audio = folder / layout.audio_dir / f"{name}.wav"  # absent: the video's own track is used
        test.samples.append(Sample(name=name, video=_media(folder, layout.video_dir, name, VIDEO_SUFFIXES),
                                   audio=audio if audio.is_file() else None,
                                   subtitle=subtitles.get(name, ""), extra={"faces": str(face_path(folder, name))}))
    return test


# ----------------------------------------------------------------------------- plain JSONL
GOLD_KEYS = {"hit_rate": "label", "waf": "valence", "ew_f1": "openset"}


def read_jsonl_set(path, set_name: str) -> TestSet:
    """``<set>_test.jsonl``: gold from ``label`` / ``valence`` / ``openset``; media fields optional."""
    path = Path(path)
    key = GOLD_KEYS[BY_NAME[set_name].metric]
    test = TestSet(set_name, str(path), {})
    for i, row in iter_jsonl(path):
        name = row.get("name")
        if not isinstance(name, str) or key not in row:
            raise ValueError(f"{path}:{i}: expected an object with 'name' and {key!r}")
        if name in test.gold:
            raise ValueError(f"{path}:{i}: duplicate name {name!r}")
        value = row[key]
        test.gold[name] = (float(value) if key == "valence" else parse_labels(value) if key == "openset"
                           else str(value).strip().lower())
        if row.get("video") or row.get("audio"):
            rel = {k: (path.parent / row[k]) if row.get(k) else None for k in ("video", "audio", "faces")}
            extra = {"faces": str(rel["faces"])} if rel["faces"] else {}
            test.samples.append(Sample(name=name, video=rel["video"], audio=rel["audio"],
                                       subtitle=row.get("subtitle") or "", extra=extra))
    return test


def find_sets(root, sets=None, check_sizes: bool = True, media: bool = True) -> dict[str, TestSet]:
    """Every set under ``root`` (``<set>_test.jsonl`` first, else its ``*-process`` folder), in benchmark order.

    ``sets`` restricts to those names; a named set that is absent is an error.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset root not found")
    wanted = list(LAYOUTS) if sets is None else list(sets)
    unknown = [s for s in wanted if s not in LAYOUTS]
    if unknown:
        raise ValueError(f"unknown sets {unknown}; expected names from {list(LAYOUTS)}")
    found = {}
    for s in wanted:
        if (root / f"{s}_test.jsonl").is_file():
            found[s] = read_jsonl_set(root / f"{s}_test.jsonl", s)
        elif (root / LAYOUTS[s].folder).is_dir():
            found[s] = read_process_set(root, s, check_sizes=check_sizes, media=media)
        elif sets is not None:
            raise FileNotFoundError(f"{root}: set {s!r} asked for, but neither {s}_test.jsonl nor "
                                    f"{LAYOUTS[s].folder}/ is there")
    return found
