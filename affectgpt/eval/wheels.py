"""Emotion lexicons (word forms, synonyms, emotion wheels) and the OV-MER grouping G.

A lexicon directory holds either the official files (``wheel1..K.xlsx|csv``,
``synonym.xlsx``, ``format.csv``) or the pair layout our built-in lexicon ships
(``wheelK.csv``, ``synonym_pairs.csv`` = wheel_word,synonym; ``format_pairs.csv`` =
surface_form,base_word). Both load into one :class:`Lexicon`.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from affectgpt.eval.parsing import normalize_label


@dataclass
class Wheel:
    """One emotion wheel: word -> level-1 category and word -> level-2 category."""

    name: str
    level1: dict[str, str]
    level2: dict[str, str]


@dataclass
class Lexicon:
    """Word forms, synonym links and wheels; ``groups(label)`` is the grouping G of every metric."""

    name: str
    forms: dict[str, tuple[str, ...]]  # surface form -> sorted base words
    synonyms: dict[str, tuple[str, ...]]  # word -> sorted wheel words it is a synonym of
    wheels: list[Wheel]
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def metric_names(self) -> list[str]:
        """Names of the label metrics in the order ``groups`` returns them."""
        names = ["M1", "M2"]
        for k in range(1, len(self.wheels) + 1):
            names += [f"M3-W{k}-L1", f"M3-W{k}-L2"]
        return names

    def groups(self, label: str) -> tuple:
        """Return G(label) for every metric (``None`` = dropped); ``label`` must be normalised."""
        hit = self._cache.get(label)
        if hit is None:
            hit = self._cache[label] = self._compute(label)
        return hit

    def _compute(self, label: str) -> tuple:
        n = 2 + 2 * len(self.wheels)
        bases = self.forms.get(label)
        if not bases:
            return (None,) * n
        m1 = bases[0]
        wheel_words = self.synonyms.get(m1, ())
        m2 = wheel_words[0] if wheel_words else None
        # every wheel word reachable from every base word, sorted, duplicates kept
        reach = sorted(w for b in bases for w in self.synonyms.get(b, ()))
        out = [m1, m2]
        for wheel in self.wheels:
            for table in (wheel.level1, wheel.level2):
                out.append(next((table[w] for w in reach if w in table), None))
        return tuple(out)


# ----------------------------------------------------------------------------- loading


def _read_table(path: Path) -> list[list]:
    """Rows (header included) of a .csv or the first sheet of a .xlsx, cells as str or None."""
    if path.suffix.lower() == ".xlsx":
        try:
            import openpyxl  # lazy: only .xlsx wheels need it; importing the scorer stays cheap
        except ImportError:  # pragma: no cover - openpyxl is a project dependency
            raise ImportError(f"{path}: reading .xlsx needs openpyxl (pip install openpyxl)") from None
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        try:
            ws = wb[wb.sheetnames[0]]
            rows = [[None if c is None else str(c) for c in row] for row in ws.iter_rows(values_only=True)]
        finally:
            wb.close()
        return rows
    with path.open(newline="", encoding="utf-8-sig") as f:
        return [[c if c != "" else None for c in row] for row in csv.reader(f)]


def _columns(rows: list[list], path: Path, wanted: list[str]) -> list[int]:
    if not rows:
        raise ValueError(f"{path}: empty file")
    header = [normalize_label(h or "") for h in rows[0]]
    missing = [w for w in wanted if w not in header]
    if missing:
        raise ValueError(f"{path}: expected columns {wanted}, missing {missing} (header: {rows[0]})")
    return [header.index(w) for w in wanted]


def load_wheel(path: Path) -> Wheel:
    """Load one wheel (columns level1, level2, level3; a blank cell repeats the one above).

    Level 1 maps every word to its level-1 group. Level 2 maps level-2/3 words to their
    level-2 group and a level-1 word to its alphabetically first level-2 child. Where a word
    appears twice, the last assignment wins: level-1 groups in order of first appearance,
    then each group's level-2 words, then their level-3 words.
    """
    rows = _read_table(path)
    i1, i2, i3 = _columns(rows, path, ["level1", "level2", "level3"])
    tree: dict[str, dict[str, list[str]]] = {}
    cur1 = cur2 = None
    for r, row in enumerate(rows[1:], start=2):
        cells = [normalize_label(row[i]) if i < len(row) and row[i] is not None else "" for i in (i1, i2, i3)]
        if not any(cells):
            continue
        if cells[0]:
            cur1, cur2 = cells[0], None
        if cells[1]:
            cur2 = cells[1]
        if cur1 is None or (cur2 is None and cells[2]):
            raise ValueError(f"{path}:{r}: a level-3 word without a level-1/level-2 group above it")
        groups2 = tree.setdefault(cur1, {})
        if cur2 is not None:
            words3 = groups2.setdefault(cur2, [])
            if cells[2]:
                words3.append(cells[2])
    level1: dict[str, str] = {}
    level2: dict[str, str] = {}
    for g1, groups2 in tree.items():
        level1[g1] = g1
        if groups2:
            level2[g1] = sorted(groups2)[0]
        for g2, words3 in groups2.items():
            level1[g2] = g1
            level2[g2] = g2
            for w in words3:
                level1[w] = g1
                level2[w] = g2
    return Wheel(path.stem, level1, level2)


def _split_cell(cell) -> list[str]:
    return [w for w in (normalize_label(p) for p in (cell or "").split(",")) if w]


def load_forms(path: Path) -> dict[str, tuple[str, ...]]:
    """Surface form -> sorted base words, from ``format.csv`` (name,format) or ``format_pairs.csv``."""
    rows = _read_table(path)
    links: dict[str, set[str]] = {}
    if path.name.startswith("format_pairs"):
        i_form, i_base = _columns(rows, path, ["surface_form", "base_word"])
        pairs = [(normalize_label(r[i_form] or ""), normalize_label(r[i_base] or "")) for r in rows[1:]]
    else:
        i_name, i_fmt = _columns(rows, path, ["name", "format"])
        pairs = []
        for r in rows[1:]:
            base = normalize_label(r[i_name] or "")
            pairs += [(form, base) for form in _split_cell(r[i_fmt] if i_fmt < len(r) else None)]
            pairs.append((base, base))
    for form, base in pairs:
        if form and base:
            links.setdefault(form, set()).add(base)
            links.setdefault(base, set()).add(base)  # every base word is its own form
    return {k: tuple(sorted(v)) for k, v in links.items()}


def load_synonyms(path: Path) -> dict[str, tuple[str, ...]]:
    """Word -> sorted wheel words, from ``synonym.xlsx`` (word_runK, synonym_runK) or ``synonym_pairs.csv``."""
    rows = _read_table(path)
    links: dict[str, set[str]] = {}

    def add(word, syn):
        if word and syn:
            links.setdefault(syn, set()).add(word)

    if path.name.startswith("synonym_pairs"):
        i_w, i_s = _columns(rows, path, ["wheel_word", "synonym"])
        for r in rows[1:]:
            w = normalize_label(r[i_w] or "")
            add(w, w)
            add(w, normalize_label(r[i_s] or ""))
    else:
        header = [normalize_label(h or "") for h in rows[0]]
        runs = sorted(int(m.group(1)) for h in header if (m := re.fullmatch(r"word_run(\d+)", h)))
        if not runs:
            raise ValueError(f"{path}: expected columns word_run1.., synonym_run1.. (header: {rows[0]})")
        for k in runs:
            i_w, i_s = _columns(rows, path, [f"word_run{k}", f"synonym_run{k}"])
            for r in rows[1:]:
                w = normalize_label(r[i_w] or "") if i_w < len(r) else ""
                add(w, w)
                for s in _split_cell(r[i_s] if i_s < len(r) else None):
                    add(w, s)
    return {k: tuple(sorted(v)) for k, v in links.items()}


def _wheel_key(p: Path) -> int:
    return int(re.sub(r"\D", "", p.stem) or 0)


def _pick(folder: Path, names: list[str]) -> Path:
    for n in names:
        if (folder / n).is_file():
            return folder / n
    raise FileNotFoundError(f"{folder}: none of {names} found (see the scorer docs for the lexicon layout)")


def load_lexicon(folder, name: str | None = None) -> Lexicon:
    """Load a lexicon directory (official or pair layout); ``name`` defaults to the folder path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: wheels directory not found")
    wheel_files: dict[str, Path] = {}
    for p in folder.iterdir():
        if re.fullmatch(r"wheel\d+\.(xlsx|csv)", p.name) and not p.name.startswith("~$"):
            # .xlsx is the authors' original; prefer it over a converted .csv of the same wheel
            if p.stem not in wheel_files or p.suffix == ".xlsx":
                wheel_files[p.stem] = p
    if not wheel_files:
        raise FileNotFoundError(f"{folder}: no wheel1..K.xlsx or .csv files")
    wheels = [load_wheel(wheel_files[k]) for k in sorted(wheel_files, key=lambda s: _wheel_key(Path(s)))]
    forms = load_forms(_pick(folder, ["format.csv", "format_pairs.csv"]))
    synonyms = load_synonyms(_pick(folder, ["synonym.xlsx", "synonym.csv", "synonym_pairs.csv"]))
    return Lexicon(name or str(folder), forms, synonyms, wheels)


BUILTIN_DIR = Path(__file__).resolve().parent / "data"
_builtin: Lexicon | None = None


def builtin_lexicon() -> Lexicon:
    """The lexicon shipped with the package (built by scripts/build_lexicon.py); loaded once."""
    global _builtin
    if _builtin is None:
        _builtin = load_lexicon(BUILTIN_DIR, name="builtin")
    return _builtin
