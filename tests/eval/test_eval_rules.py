"""Hand-computed cases for every scoring rule, on a tiny lexicon written in the official layout."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from affectgpt.eval import load_lexicon, parse_labels, read_records, score
from affectgpt.eval.metrics import basic_hit_rate

FORMAT = """name,format
happy,"happiness,happily,cheery"
glad,"gladness,cheery"
joyful,"joy,joyfulness"
angry,"anger,angrily"
mad,madness
calm,
"""
SYNONYM = """word_run1,synonym_run1,word_run2,synonym_run2
happy,"glad, joyful",Joyful,Happy
angry,mad,calm,
glad,cheerful,,
"""
WHEEL1 = """level1,level2,level3
positive,happy,joyful
,,glad
,calm,
negative,mad,angry
"""
WHEEL2 = """level1,level2,level3
up,happy,glad
down,sad,glad
"""
WHEEL3 = """level1,level2,level3
bright,joyful,
"""


@pytest.fixture()
def lex_dir(tmp_path):
    d = tmp_path / "wheels"
    d.mkdir()
    (d / "format.csv").write_text(FORMAT)
    (d / "synonym.csv").write_text(SYNONYM)
    (d / "wheel1.csv").write_text(WHEEL1)
    (d / "wheel2.csv").write_text(WHEEL2)
    (d / "wheel3.csv").write_text(WHEEL3)
    return d


def test_parse_labels_rule():
    assert parse_labels("[happy, 'Sad', \"angry\"]") == ["happy", "sad", "angry"]
    assert parse_labels(" [ worried ,, ] ") == ["worried"]
    assert parse_labels(["Happy, sad", " x "]) == ["happy, sad", "x"]  # a real list is not split
    assert parse_labels("") == [] and parse_labels(None) == [] and parse_labels("[]") == []
    assert parse_labels("[a, a]") == ["a", "a"]  # duplicates survive parsing, sets come later
    with pytest.raises(TypeError):
        parse_labels(3)


def test_grouping_rules(lex_dir):
    lex = load_lexicon(lex_dir)
    assert lex.metric_names == ["M1", "M2", "M3-W1-L1", "M3-W1-L2", "M3-W2-L1", "M3-W2-L2", "M3-W3-L1", "M3-W3-L2"]
    # M1: smallest base word; M2: smallest wheel word the base is a synonym of (runs united, case folded)
    assert lex.groups("cheery")[:2] == ("glad", "glad")
    assert lex.groups("happy")[:2] == ("happy", "happy")
    assert lex.groups("joy")[:2] == ("joyful", "happy")
    assert lex.groups("madness")[:2] == ("mad", "angry")
    # unknown word: dropped at every level
    assert lex.groups("zzz") == (None,) * 8
    # level 1 / level 2 of wheel 1; a level-1 word goes to its alphabetically first level-2 child
    assert lex.groups("glad")[2:4] == ("positive", "happy")
    assert lex.wheels[0].level2["positive"] == "calm"
    assert lex.groups("calm")[2:4] == ("positive", "calm")
    # a word listed twice in one wheel: the last assignment wins
    assert lex.groups("glad")[4:6] == ("down", "sad")
    # M3 walks the sorted reachable words: 'happy' is not in wheel 3, 'joyful' is
    assert lex.groups("happy")[6:8] == ("bright", "joyful")
    # no wheel word of wheel 3 reachable from 'angry'
    assert lex.groups("angry")[6:8] == (None, None)
    # a word with no synonym entry keeps M1 but is dropped by M2 and M3
    assert lex.groups("mad")[1] == "angry" and lex.groups("anger")[1] == "angry"


def test_hand_computed_scores(lex_dir):
    golds = [
        {"name": "s1", "emotions": ["happy", "angry"]},
        {"name": "s2", "emotions": []},  # empty -> neutral -> unknown here -> skipped everywhere
        {"name": "s3", "emotions": "[mad]"},  # no prediction -> empty prediction
        {"name": "s4", "emotions": ["joyful", "joyful"]},
    ]
    preds = [
        {"name": "s1", "emotions": ["joy", "calm", "unknownword"]},
        {"name": "s2", "emotions": ["happy"]},
        {"name": "s4", "emotions": "[joy, 'joy']"},
        {"name": "extra", "emotions": ["happy"]},  # not in gold: ignored
    ]
    out = score(preds, golds, wheels=lex_dir)
    lab = out["label"]
    assert out["n_gold"] == 4 and out["n_pred"] == 4 and out["missing_pred"] == 1
    assert lab["M1"] == pytest.approx({"precision": 1 / 3, "recall": 1 / 3, "f1": 1 / 3, "n": 3})
    assert lab["M2"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "n": 3})
    # F from the averaged P and R, not the mean of per-sample F
    assert lab["M3-W1-L1"] == pytest.approx({"precision": 2 / 3, "recall": 0.5, "f1": 4 / 7, "n": 3})
    assert lab["M3-W1-L2"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "n": 3})
    # wheel 2: s1 happy vs joy both reach 'happy' -> up; s3 'mad' reaches nothing -> skipped; s4 up vs up
    assert lab["M3-W2-L1"] == pytest.approx({"precision": 1.0, "recall": 1.0, "f1": 1.0, "n": 2})
    f = [lab[k]["f1"] for k in ["M1", "M2", "M3-W1-L1", "M3-W1-L2", "M3-W2-L1", "M3-W2-L2", "M3-W3-L1", "M3-W3-L2"]]
    assert lab["m_avg_f1"] == pytest.approx(sum(f) / 8)
    assert lab["wheel_l1_f1"] == pytest.approx((f[2] + f[4] + f[6]) / 3)
    assert lab["wheel_l1_l2_f1"] == pytest.approx(((f[2] + f[4] + f[6]) / 3 + (f[3] + f[5] + f[7]) / 3) / 2)
    assert out["extraction"] == {"from_description": 0, "empty": 0}
    assert out["clue"] == {"precision": None, "recall": None, "f1": None, "method": None}
    assert out["lexicon"] == str(lex_dir)


def test_neutral_gold_counts_when_the_lexicon_knows_it(lex_dir):
    (lex_dir / "format.csv").write_text(FORMAT + "neutral,\n")
    out = score([{"name": "a", "emotions": []}], [{"name": "a", "emotions": "[]"}], wheels=lex_dir)
    # gold [] -> ["neutral"], known to M1 only; the empty prediction scores 0 there
    assert out["label"]["M1"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "n": 1}
    assert out["label"]["M2"]["n"] == 0
    out = score([{"name": "a", "emotions": ["neutral"]}], [{"name": "a", "emotions": []}], wheels=lex_dir)
    assert out["label"]["M1"]["f1"] == 1.0


def test_basic_hit_rate(lex_dir):
    lex = load_lexicon(lex_dir)
    gold = [["happy"], ["angry"], ["zzz"]]
    pred = [["glad", "angry"], ["calm"], ["happy"]]
    out = basic_hit_rate(lex, gold, pred)
    # wheel1: s1 hit (positive), s2 miss (negative vs positive), s3 skipped -> 1/2
    # wheel2: s1 gold happy -> up, pred glad -> down (listed last under 'down'); angry unknown -> 0/1
    # wheel3: s1 gold happy -> joyful -> bright, pred glad/happy absent from wheel 3 -> 0/1
    assert out["per_wheel"]["W1"] == {"hit_rate": 0.5, "n": 2}
    assert out["per_wheel"]["W2"] == {"hit_rate": 0.0, "n": 1}
    assert out["per_wheel"]["W3"] == {"hit_rate": 0.0, "n": 1}
    assert out["hit_rate"] == pytest.approx(0.5 / 3)
    full = score([{"name": "a", "emotions": ["glad"]}], [{"name": "a", "emotions": ["happy"]}], wheels=lex_dir,
                 task="basic")
    assert full["basic"]["per_wheel"]["W1"]["hit_rate"] == 1.0


def test_read_records_layouts_and_errors(tmp_path):
    (tmp_path / "a.csv").write_text('name,openset\ns1,"[happy, sad]"\ns2,\n')
    (tmp_path / "b.csv").write_text('name,reason\ns1,"He smiles. Therefore, the person\'s emotional state is happy."\n')
    (tmp_path / "c.jsonl").write_text('{"name": "s1", "emotions": ["x"]}\n\n{"names": "s2", "reasons": "r"}\n')
    (tmp_path / "bad.jsonl").write_text('{"name": "s1"}\n{oops\n')
    (tmp_path / "noname.csv").write_text("id,openset\n1,x\n")
    assert read_records(tmp_path / "a.csv") == [
        {"name": "s1", "emotions": "[happy, sad]"},
        {"name": "s2", "emotions": ""},
    ]
    assert read_records(tmp_path / "b.csv")[0]["description"].startswith("He smiles")
    assert read_records(tmp_path / "c.jsonl") == [{"name": "s1", "emotions": ["x"]}, {"name": "s2", "description": "r"}]
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not valid JSON"):
        read_records(tmp_path / "bad.jsonl")
    (tmp_path / "list.jsonl").write_text('{"name": "s1"}\n["s2"]\n')
    with pytest.raises(ValueError, match=r"list.jsonl:2: expected a JSON object, found list"):
        read_records(tmp_path / "list.jsonl")
    # U+2028 is a line break to str.splitlines() but legal inside a JSON string (json.dumps writes it raw)
    line = json.dumps({"name": "s1", "description": "calm\u2028then angry"}, ensure_ascii=False)
    (tmp_path / "u2028.jsonl").write_text(line + "\n", encoding="utf-8")
    assert read_records(tmp_path / "u2028.jsonl") == [{"name": "s1", "description": "calm\u2028then angry"}]
    with pytest.raises(ValueError, match="no 'name' column"):
        read_records(tmp_path / "noname.csv")
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        read_records(tmp_path / "missing.jsonl")


def test_score_errors(lex_dir):
    with pytest.raises(ValueError, match="duplicate name"):
        score([], [{"name": "a", "emotions": []}, {"name": "a", "emotions": []}], wheels=lex_dir)
    with pytest.raises(ValueError, match="has no 'emotions'"):
        score([], [{"name": "a"}], wheels=lex_dir)
    with pytest.raises(ValueError, match="unknown task"):
        score([], [], wheels=lex_dir, task="closed")
    with pytest.raises(FileNotFoundError, match="synonym"):
        (lex_dir / "synonym.csv").unlink()
        load_lexicon(lex_dir)


@pytest.mark.integration
def test_cli_writes_json_and_fails_cleanly(tmp_path, lex_dir):
    (tmp_path / "g.jsonl").write_text(json.dumps({"name": "s1", "emotions": ["happy"]}) + "\n")
    (tmp_path / "p.csv").write_text('name,openset\ns1,"[glad]"\n')
    out = tmp_path / "m.json"
    cmd = [
        sys.executable,
        "-m",
        "affectgpt.eval",
        "--pred",
        str(tmp_path / "p.csv"),
        "--gold",
        str(tmp_path / "g.jsonl"),
        "--wheels",
        str(lex_dir),
        "--out",
        str(out),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    assert res.returncode == 0, res.stderr
    assert "M3-W1-L1" in res.stdout
    assert json.loads(out.read_text())["label"]["M3-W1-L1"]["f1"] == 1.0
    cmd[4] = str(tmp_path / "nope.jsonl")
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    assert res.returncode == 2 and "nope.jsonl" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.integration
def test_import_is_light():
    code = "import sys, affectgpt.eval; assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_key_value_command_line_composes_and_scores_without_torch(tmp_path):
    (tmp_path / "g.jsonl").write_text(json.dumps({"name": "s1", "emotions": ["happy"]}) + "\n")
    (tmp_path / "p, one.jsonl").write_text(json.dumps({"name": "s1", "emotions": ["happy"]}) + "\n")
    code = ("import sys; from affectgpt.apps.score import main\n"
            f"assert main(['pred={tmp_path / 'p, one.jsonl'}', 'gold={tmp_path / 'g.jsonl'}', "
            f"'out={tmp_path / 'm.json'}', 'task=open']) == 0\n"
            "assert main(['--pred', 'x', '--gold', 'y', 'task=nope']) == 2\n"
            "assert 'torch' not in sys.modules, 'torch was imported'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path / "m.json").read_text())["label"]
    assert "argument 'task=nope': task expects one of open, basic (default open)" in r.stderr
