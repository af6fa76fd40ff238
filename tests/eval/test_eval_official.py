"""Official-semantics check against the authors' wheel files (skipped when the reference folder is absent).

An independent, deliberately plain re-implementation of the OV-MER rules (written from the
metric definitions of the OV-MER paper, sharing no code with affectgpt.eval) must agree with the scorer to 1e-6 on all
ten baseline prediction files, and M1 / M2 / M-avg must be within 1.5 points of the paper.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REF = Path(os.environ.get("AFFECTGPT_REFERENCE_DIR", Path(__file__).resolve().parents[3] / "shared" / "reference"))
OV = REF / "ovmer"
WHEELS = OV / "official_emotion_wheel"
GOLD = OV / "gt" / "mer2024_check-openset.jsonl"
pytestmark = pytest.mark.skipif(not WHEELS.is_dir() or not GOLD.is_file(), reason=f"reference data not at {REF}")

PAPER = {  # OV-MER table, F-score %: M1, M2, M-avg
    "Chat-UniVi": (28.89, 33.23, 46.75),
    "mPLUG-Owl": (27.47, 32.47, 45.63),
    "SALMONN": (23.57, 28.83, 43.53),
    "Video-LLaVA": (25.47, 30.73, 43.27),
    "Otter": (22.21, 27.99, 39.41),
    "Qwen-Audio": (20.49, 23.37, 31.84),
}


# ------------------------------------------------------------------ independent implementation
def _ref_split(value):
    if isinstance(value, list):
        items = value
    else:
        s = value.strip()
        s = s[1:] if s[:1] == "[" else s
        s = s[:-1] if s[-1:] == "]" else s
        items, cur = [], ""
        for ch in s:
            if ch in "'\",":
                items.append(cur)
                cur = ""
            else:
                cur += ch
        items.append(cur)
    return [x.strip().lower() for x in items if x.strip()]


def _ref_sheet(path):
    import openpyxl

    ws = openpyxl.load_workbook(path).active
    return [[c.value for c in row] for row in ws.iter_rows()]


def _ref_lexicon():
    import csv

    form2base = {}
    with open(WHEELS / "format.csv", newline="") as f:
        for row in csv.DictReader(f):
            base = row["name"].strip().lower()
            for form in [base] + row["format"].split(","):
                form = form.strip().lower()
                if form:
                    form2base.setdefault(form, set()).add(base)
    rows = _ref_sheet(WHEELS / "synonym.xlsx")
    header = [h.lower() for h in rows[0]]
    syn = {}
    for run in range(1, 9):
        wi, si = header.index(f"word_run{run}"), header.index(f"synonym_run{run}")
        for row in rows[1:]:
            if row[wi] is None:
                continue
            word = str(row[wi]).strip().lower()
            syn.setdefault(word, set()).add(word)
            for s in str(row[si] or "").split(","):
                if s.strip():
                    syn.setdefault(s.strip().lower(), set()).add(word)
    wheels = []
    for k in range(1, 6):
        rows = _ref_sheet(WHEELS / f"wheel{k}.xlsx")[1:]
        order, children, last = [], {}, [None, None]
        for row in rows:
            vals = [None if v is None else str(v).strip().lower() for v in row[:3]]
            if vals[0]:
                last[0] = vals[0]
                if vals[0] not in children:
                    order.append(vals[0])
                    children[vals[0]] = {}
            if vals[1]:
                last[1] = vals[1]
                children[last[0]].setdefault(vals[1], [])
            if vals[2]:
                children[last[0]][last[1]].append(vals[2])
        l1, l2 = {}, {}
        for a in order:
            l1[a] = a
            l2[a] = min(children[a])
            for b, cs in children[a].items():
                l1[b], l2[b] = a, b
                for c in cs:
                    l1[c], l2[c] = a, b
        wheels.append((l1, l2))
    return form2base, syn, wheels


def _ref_group(label, lex, metric):
    form2base, syn, wheels = lex
    if label not in form2base:
        return None
    bases = sorted(form2base[label])
    if metric == "M1":
        return bases[0]
    if metric == "M2":
        cands = sorted(syn.get(bases[0], []))
        return cands[0] if cands else None
    k, level = metric
    table = wheels[k][level]
    words = []
    for b in bases:
        words.extend(syn.get(b, []))
    for w in sorted(words):
        if w in table:
            return table[w]
    return None


def _ref_score(gold, pred, lex, metric):
    ps, rs = [], []
    for name, glabels in gold.items():
        y = {_ref_group(x, lex, metric) for x in (glabels or ["neutral"])} - {None}
        if not y:
            continue
        yh = {_ref_group(x, lex, metric) for x in pred.get(name, [])} - {None}
        if not yh:
            ps.append(0.0)
            rs.append(0.0)
            continue
        ps.append(len(y & yh) / len(yh))
        rs.append(len(y & yh) / len(y))
    p, r = sum(ps) / len(ps), sum(rs) / len(rs)
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def _read(path):
    return [json.loads(line) for line in open(path) if line.strip()]


@pytest.fixture(scope="module")
def ref_lex():
    return _ref_lexicon()


def test_official_semantics_match_independent_implementation_and_paper(ref_lex):
    from affectgpt.eval import read_records, score

    golds = read_records(GOLD)
    gold = {r["name"]: _ref_split(r["emotions"]) for r in _read(GOLD)}
    files = sorted((OV / "predictions").glob("*__nosubtitle-addsub.jsonl"))
    assert len(files) == 10
    metrics = ["M1", "M2"] + [(k, lv) for k in range(5) for lv in (0, 1)]
    for path in files:
        model = path.name.split("__")[0]
        out = score(read_records(path), golds, wheels=WHEELS)
        pred = {r["name"]: _ref_split(r["emotions"]) for r in _read(path)}
        fs = []
        for m in metrics:
            key = m if isinstance(m, str) else f"M3-W{m[0] + 1}-L{m[1] + 1}"
            p, r, f = _ref_score(gold, pred, ref_lex, m)
            got = out["label"][key]
            assert abs(got["precision"] - p) < 1e-6 and abs(got["recall"] - r) < 1e-6, (model, key)
            assert abs(got["f1"] - f) < 1e-6, (model, key, got["f1"], f)
            fs.append(f)
        assert abs(out["label"]["m_avg_f1"] - sum(fs) / len(fs)) < 1e-6
        l1 = [fs[2 + 2 * k] for k in range(5)]
        l2 = [fs[3 + 2 * k] for k in range(5)]
        assert abs(out["label"]["wheel_l1_f1"] - sum(l1) / 5) < 1e-6
        assert abs(out["label"]["wheel_l1_l2_f1"] - (sum(l1) / 5 + sum(l2) / 5) / 2) < 1e-6
        assert out["n_gold"] == 332 and out["missing_pred"] == 0
        if model in PAPER:
            m1, m2, mavg = PAPER[model]
            assert abs(100 * out["label"]["M1"]["f1"] - m1) <= 1.5, model
            assert abs(100 * out["label"]["M2"]["f1"] - m2) <= 1.5, model
            assert abs(100 * out["label"]["m_avg_f1"] - mavg) <= 1.5, model


def test_csv_wheels_give_the_same_numbers():
    """The converted .csv wheels (when present) load through the same code to the same numbers."""
    conv = OV / "converted_emotion_wheel"
    if not conv.is_dir():
        pytest.skip("no converted wheels")
    from affectgpt.eval import read_records, score

    golds = read_records(GOLD)
    preds = read_records(OV / "predictions" / "Otter__nosubtitle-addsub.jsonl")
    a = score(preds, golds, wheels=WHEELS)["label"]
    b = score(preds, golds, wheels=conv)["label"]
    for key, v in a.items():
        if isinstance(v, dict):
            assert abs(v["f1"] - b[key]["f1"]) < 1e-9, key
