"""Prediction files (``infer.py manifest=... output=FILE``, the benchmark runner's per-set files): what
counts as one, checked before anything appends to it or repairs it.

A resumable run appends to an existing ``output=`` file. That file is trusted only if every line is a
row these programs write; anything else (a typo'd ``notes.md``, the manifest itself, a training
manifest, a scorer's gold file) is refused with the file and line, and left byte for byte as it was.
Torch-free, so ``infer.py`` checks it before the model loads.
"""

from __future__ import annotations

import json
from pathlib import Path

# What a subtitle=auto row says of its transcript (runtime.asr.Transcript.fields): inference, the benchmark
# runner, the checker's manifest and the training transcript cache all carry these keys.
ASR_FIELDS = ("subtitle", "subtitle_source", "asr", "asr_language")
# Every key a row of ``rows_for`` may have, and the benchmark runner's merged rows' "reason".
# A prediction row, plus what inference.sample_fields adds: a timeline segment and a subtitle=auto transcript.
ROW_KEYS = {"name", "task", "description", "emotions", "error", "reason", "start", "end", *ASR_FIELDS}
ROW_START = b'{"name": '  # how json.dumps begins each of those rows: the only tail a torn write can leave


def _prediction_row(rec: dict) -> str | None:
    """Why ``rec`` is not a row this program (or the benchmark runner) writes; None when it is one. A
    scorer's gold row (name, emotions, description, no task) is not one."""
    if not isinstance(rec.get("name"), str):
        return "no string 'name'"
    extra = sorted(set(rec) - ROW_KEYS)
    if extra:
        return f"keys {extra} that prediction rows do not have"
    if isinstance(rec.get("error"), str):
        return None
    if isinstance(rec.get("emotions"), list) and (
        (isinstance(rec.get("description"), str) and isinstance(rec.get("task"), str))
        or isinstance(rec.get("reason"), str)
    ):
        return None
    return "neither 'task' + 'description' + 'emotions', 'reason' + 'emotions', nor 'error'"


def check_predictions(out: Path, inputs: tuple[Path, ...] = ()) -> tuple[list[dict], int]:
    """Read a predictions file to resume without changing it: its rows and the length of the part to
    keep (shorter than the file only when the rest is the torn start of one of its own rows). Any other
    content (not JSONL, another program's rows, a manifest, ``out`` being one of ``inputs``) is a
    ValueError naming file:line, and nothing is written."""
    out = Path(out)
    if not out.exists():
        return [], 0
    for p in inputs:
        if p is not None and Path(p).exists() and out.resolve() == Path(p).resolve():
            raise ValueError(f"{out}: is the input manifest itself; give output= a new file")
    if not out.is_file():
        raise ValueError(f"{out}: not a file")
    raw = out.read_bytes()
    keep = raw.rfind(b"\n") + 1  # after the last newline: a kill mid-write, if it is the start of a row
    tail = raw[keep:]
    if tail and not (tail.startswith(ROW_START) or ROW_START.startswith(tail)):
        last = raw.count(b"\n") + 1
        raise ValueError(f"{out}:{last}: not a predictions file of python infer.py (the last line "
                         "is not the start of a prediction row); refusing to touch it: give output= a new file")
    rows = []
    for i, line in enumerate(raw[:keep].split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line.decode("utf-8-sig" if i == 1 else "utf-8"))
        except UnicodeDecodeError as e:
            why = f"not UTF-8 text (byte {e.start + 1})"
        except json.JSONDecodeError as e:
            why = f"not valid JSON ({e.msg} at column {e.colno})"
        else:
            why = _prediction_row(rec) if isinstance(rec, dict) else "not a JSON object"
            if why is None:
                rows.append(rec)
                continue
        raise ValueError(f"{out}:{i}: not a prediction row of python infer.py ({why}); refusing to touch the "
                         "file: give output= a new file, or fix or delete this one to resume")
    return rows, keep
