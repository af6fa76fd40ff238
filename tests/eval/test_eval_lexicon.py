"""The built-in lexicon: provenance, families, wheels, ranking agreement with the official files."""
from __future__ import annotations

import glob
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from affectgpt.eval import builtin_lexicon, read_records, score
from affectgpt.eval.wheels import BUILTIN_DIR

ROOT = Path(__file__).resolve().parents[2]
REF = Path(os.environ.get("AFFECTGPT_REFERENCE_DIR", ROOT.parent / "shared" / "reference"))


def test_provenance_records_every_file():
    prov = json.loads((BUILTIN_DIR / "PROVENANCE.json").read_text())
    files = sorted(p.name for p in BUILTIN_DIR.glob("*.csv"))
    assert sorted(prov["sha256"]) == files
    for name, digest in prov["sha256"].items():
        assert hashlib.sha256((BUILTIN_DIR / name).read_bytes()).hexdigest() == digest, name


def test_families_and_wheels():
    lex = builtin_lexicon()
    assert lex.name == "builtin" and len(lex.wheels) == 3
    g = lex.groups
    assert g("happy")[0] == g("happiness")[0] == g("happily")[0] == g("happier")[0]
    assert g("unhappy")[0] != g("happy")[0]  # a prefix antonym is its own family
    assert g("frustrated")[0] == g("frustration")[0]
    assert g("furious")[2] == g("angry")[2] == "mad"  # Willcox level 1
    assert g("worried")[4] == g("anxious")[4] == "fear"  # Parrott level 1
    assert g("joyful")[6] == g("ecstatic")[6] == "joy"  # Plutchik level 1
    assert g("xyzzy") == (None,) * 8


@pytest.mark.skipif(not (REF / "ovmer" / "official_emotion_wheel").is_dir(), reason="no reference data")
def test_builtin_ranks_the_ten_systems_like_the_official_files():
    import numpy as np

    golds = read_records(REF / "ovmer" / "gt" / "mer2024_check-openset.jsonl")
    official, ours = [], []
    for path in sorted(glob.glob(str(REF / "ovmer" / "predictions" / "*.jsonl"))):
        preds = read_records(path)
        official.append(score(preds, golds, wheels=REF / "ovmer" / "official_emotion_wheel")["label"]["m_avg_f1"])
        ours.append(score(preds, golds)["label"]["m_avg_f1"])
    assert len(ours) == 10
    assert np.corrcoef(official, ours)[0, 1] >= 0.95


@pytest.mark.integration
@pytest.mark.skipif(not Path("/usr/share/wordnet/index.sense").is_file() or importlib.util.find_spec("nltk") is None,
                    reason="WordNet (Debian wordnet-base + wordnet-sense-index) or nltk absent")
def test_build_script_reproduces_the_committed_files(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_lexicon.py"), "--out", str(tmp_path)], check=True,
                   capture_output=True)
    for p in BUILTIN_DIR.glob("*.csv"):
        assert (tmp_path / p.name).read_bytes() == p.read_bytes(), p.name
