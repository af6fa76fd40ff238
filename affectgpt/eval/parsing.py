"""Reading prediction / gold records and parsing label lists.

Records are plain dicts ``{"name", "emotions"?, "description"?}``. ``emotions`` may be a
real list or a list string such as ``"[happy, 'sad']"``; both are parsed here with the
OV-MER rule so that our numbers equal the official ones.
"""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from affectgpt.core.fileio import iter_jsonl

# Official rule: split on every quote and comma (a real list is not split).
_SPLIT = re.compile(r"['\",]")

# Column / key aliases of the layouts we accept, mapped to our canonical keys.
_NAME_KEYS = ("name", "names")
_EMOTION_KEYS = ("emotions", "openset")
_DESCRIPTION_KEYS = ("description", "reason", "reasons", "english")


def normalize_label(label: str) -> str:
    """Lower-case and strip one label (the official normalisation)."""
    return str(label).strip().lower()


def parse_labels(value) -> list[str]:
    """Return the normalised labels of a list or a list string, in order, empties dropped.

    A string loses one leading ``[`` and one trailing ``]`` and is split on every
    ``'``, ``"`` and ``,``. ``None`` gives ``[]``. Duplicates are kept (sets come later).
    """
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        pieces = [normalize_label(v) for v in value if v is not None]
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            text = text[1:]
        if text.endswith("]"):
            text = text[:-1]
        pieces = [normalize_label(p) for p in _SPLIT.split(text)]
    else:
        raise TypeError(f"emotions must be a list or a list string, got {type(value).__name__}: {value!r}")
    return [p for p in pieces if p]


def _canonical(raw: dict, where: str) -> dict:
    """Map one raw record with any accepted key spelling to ``{"name", "emotions"?, "description"?}``."""
    out: dict = {}
    for key in _NAME_KEYS:
        if key in raw and raw[key] not in (None, ""):
            if isinstance(raw[key], bool) or not isinstance(raw[key], (str, int)):
                raise ValueError(f"{where}: '{key}' must be a string, found {_kind(raw[key])}")
            out["name"] = str(raw[key]).strip()
            break
    else:
        raise ValueError(f"{where}: record has no 'name' (keys: {sorted(raw)})")
    for key in _EMOTION_KEYS:
        if key in raw and raw[key] is not None:
            value = raw[key]
            if not (isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))):
                raise ValueError(f"{where}: '{key}' must be a list of strings or a list string such as "
                                 f"\"[happy, sad]\", found {_kind(value)}")
            out["emotions"] = value
            break
    for key in _DESCRIPTION_KEYS:
        if key in raw and raw[key] not in (None, ""):
            if not isinstance(raw[key], str):
                raise ValueError(f"{where}: '{key}' must be a string, found {_kind(raw[key])}")
            out["description"] = raw[key]
            break
    return out


def _kind(value) -> str:
    """A JSON value's type and a short excerpt, for an error message."""
    kinds = {dict: "an object", list: "a list", bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    return f"{kinds.get(type(value), type(value).__name__)} {json.dumps(value, ensure_ascii=False, default=str)[:60]}"


def read_records(path) -> list[dict]:
    """Read records from JSONL (``.jsonl``/``.json``) or CSV (``name,openset``, ``name,reason``, EMER ``names,...``).

    Returns canonical dicts with ``name`` and, when present, ``emotions`` (raw value, parsed
    later) and ``description``. Raises ``ValueError`` naming the file and line on bad input.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    records: list[dict] = []
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not set(reader.fieldnames) & set(_NAME_KEYS):
                raise ValueError(f"{path}: CSV header {reader.fieldnames} has no 'name' column")
            for i, row in enumerate(reader, start=2):
                row = {k.strip(): v for k, v in row.items() if k is not None}
                records.append(_canonical(row, f"{path}:{i}"))
        return records
    if path.suffix.lower() == ".json":
        text = path.read_text(encoding="utf-8")
        if text.lstrip().startswith("["):
            try:
                rows = json.loads(text)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: invalid JSON: {e}") from None
            return [_canonical(r, f"{path}[{i}]") for i, r in enumerate(rows)]
    return [_canonical(raw, f"{path}:{i}") for i, raw in iter_jsonl(path)]
