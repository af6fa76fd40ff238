"""Readers on the authors' real EMER text, written out in the official CSV layouts."""

from __future__ import annotations

import csv
import json
import os
import re
from collections import Counter
from pathlib import Path

import pytest

from affectgpt.data.manifest import ManifestError, Sample, read_manifest
from affectgpt.data.readers import (
    Source,
    epoch_counts,
    mix_epoch,
    parse_label_list,
    read_emer_csv,
    read_jsonl,
    read_mer2025,
    read_source,
    read_track_csvs,
)

REFERENCE = Path(
    os.environ.get("AFFECTGPT_REFERENCE_DIR", Path(__file__).resolve().parents[3] / "shared" / "reference")
)
EMER_V1 = REFERENCE / "emer" / "emer_v1_gt-eng.jsonl"
EMER_V2 = REFERENCE / "emer" / "emer_v2_final-EMER-reason.jsonl"
OPENSET = REFERENCE / "ovmer" / "gt" / "mer2024_check-openset.jsonl"
needs_reference = pytest.mark.skipif(
    not (EMER_V1.is_file() and EMER_V2.is_file() and OPENSET.is_file()),
    reason=f"reference data not found under {REFERENCE}",
)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def chinese_subtitle(description: str) -> str:
    """EMER v2's Chinese descriptions quote the subtitle: 字幕内容：“…”."""
    m = re.search(r"字幕内容[：:]\s*“(.*?)”", description)
    return m.group(1) if m else ""


@pytest.fixture(scope="module")
def mer2025_dir(tmp_path_factory) -> Path:
    """The MER2025 release layout for OV-MERD, filled with the real EMER v2 text and labels."""
    root = tmp_path_factory.mktemp("mer2025")
    labels = jsonl(OPENSET)
    write_csv(root / "track2_train_ovmerd.csv", ["name", "openset"], [[r["name"], str(r["emotions"])] for r in labels])
    v2 = jsonl(EMER_V2)
    write_csv(root / "track3_train_ovmerd.csv", ["name", "reason"], [[r["name"], r["english"]] for r in v2])
    english = {r["names"]: r["subtitles"] for r in jsonl(EMER_V1)}
    write_csv(
        root / "subtitle_chieng.csv",
        ["name", "chinese", "english"],
        [[r["name"], chinese_subtitle(r["chinese"]), english.get(r["name"], "")] for r in v2],
    )
    (root / "video").mkdir()
    (root / "audio").mkdir()
    return root


@needs_reference
def test_emer_v1_csv_reads_every_real_row(tmp_path):
    rows = jsonl(EMER_V1)
    csv_path = write_csv(
        tmp_path / "gt-eng.csv",
        ["names", "emotions", "subtitles", "reasons"],
        [[r["names"], r["emotions"], r["subtitles"], r["reasons"]] for r in rows],
    )
    samples, report = read_emer_csv(csv_path)
    assert (report.rows_read, report.rows_kept, report.rows_dropped) == (100, 100, 0)
    by_name = {s.name: s for s in samples}
    for r in rows:
        s = by_name[r["names"]]
        assert s.subtitle == r["subtitles"] and s.description == r["reasons"]
        assert s.emotions == (r["emotions"].lower(),)
        assert s.video == tmp_path / "video" / f"{r['names']}.mp4" and s.audio is None
    # drop_missing_media: only rows whose clip exists survive; the rest are counted
    (tmp_path / "video").mkdir()
    for r in rows[:3]:
        (tmp_path / "video" / f"{r['names']}.avi").write_bytes(b"x")
    samples, report = read_emer_csv(csv_path, drop_missing_media=True)
    assert [s.video.suffix for s in samples] == [".avi"] * 3
    assert report.dropped == Counter({"media file missing": 97})


def test_emer_csv_counts_duplicates_empty_names_and_missing_columns(tmp_path):
    p = write_csv(
        tmp_path / "gt-eng.csv",
        ["names", "emotions", "subtitles", "reasons"],
        [["a", "happy", "hi", "r"], ["a", "sad", "", "r2"], ["", "sad", "", ""], ["b", "", "", ""]],
    )
    samples, report = read_emer_csv(p)
    assert [s.name for s in samples] == ["a", "b"] and samples[1].emotions == ("neutral",)
    assert report.rows_read == 4 and report.rows_kept == 2
    assert report.dropped == Counter({"duplicate name": 1, "empty name": 1})
    assert report.notes["without a subtitle"] == 1 and report.notes["without a description"] == 1
    assert "4 rows read, 2 kept, 2 dropped" in str(report)
    bad = write_csv(tmp_path / "bad.csv", ["name", "emotion"], [["a", "happy"]])
    with pytest.raises(ManifestError, match=r"bad.csv: missing column\(s\) \['names'"):
        read_emer_csv(bad)


@needs_reference
@pytest.mark.parametrize("language", ["english", "chinese"])
def test_mer2025_layout_joins_tracks_and_picks_the_subtitle_language(mer2025_dir, language):
    samples, report = read_mer2025(mer2025_dir, subset="ovmerd", language=language)
    labels = {r["name"]: tuple(dict.fromkeys(e.lower() for e in r["emotions"])) for r in jsonl(OPENSET)}
    v2 = {r["name"]: r for r in jsonl(EMER_V2)}
    assert report.rows_read == report.rows_kept == 332 and not report.dropped
    for s in samples:
        assert s.emotions == labels[s.name] and s.description == v2[s.name]["english"]
        assert s.video == mer2025_dir / "video" / f"{s.name}.mp4"
    subtitled = sum(bool(s.subtitle) for s in samples)
    if language == "english":
        v1 = {r["names"]: r["subtitles"] for r in jsonl(EMER_V1)}
        assert (
            subtitled == sum(bool(v1.get(name)) for name in v2) == 36
        )  # EMER v1 overlaps OV-MERD on 39 clips, 3 silent
    else:
        assert subtitled == sum(bool(chinese_subtitle(r["chinese"])) for r in v2.values()) > 300
        assert all(re.search(r"[\u4e00-\u9fff]", s.subtitle) for s in samples if s.subtitle)
    assert report.notes["without a subtitle"] == 332 - subtitled


def test_tracks_neutral_partial_rows_audio_and_descriptions_by_language(tmp_path):
    write_csv(tmp_path / "track2_train_mercaptionplus.csv", ["name", "openset"],
              [["a", "[]"], ["b", "['Happy', 'excited']"], ["b", "x"]])
    write_csv(tmp_path / "track3_train_mercaptionplus.csv", ["name", "reason"],
              [["b", "he smiles"], ["c", "she frowns"], ["", "?"]])
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "c.wav").write_bytes(b"RIFF")
    samples, report = read_mer2025(tmp_path)
    got = {s.name: s for s in samples}
    assert got["a"].emotions == ("neutral",) and got["a"].description is None
    assert got["b"].emotions == ("happy", "excited") and got["b"].description == "he smiles"
    assert got["c"].emotions is None and got["c"].audio == tmp_path / "audio" / "c.wav"
    assert got["a"].audio is None
    assert report.rows_read == report.rows_kept + report.rows_dropped == 5
    assert report.dropped == Counter(
        {"duplicate name in track2_train_mercaptionplus.csv": 1, "empty name in track3_train_mercaptionplus.csv": 1}
    )
    d = write_csv(tmp_path / "reason.csv", ["name", "chinese", "english"], [["a", "他笑了", "he laughs"]])
    s, _ = read_track_csvs(None, d, language="chinese", video_dir=tmp_path / "video")
    assert s[0].description == "他笑了"
    with pytest.raises(ManifestError, match="neither track2_train_x.csv nor track3_train_x.csv"):
        read_mer2025(tmp_path, subset="x")


def test_parse_label_list():
    assert parse_label_list("['Happy', 'excited', 'happy']") == ("happy", "excited")
    assert parse_label_list("worried, sad") == ("worried", "sad")
    assert parse_label_list("") == ("neutral",) and parse_label_list("[]") == ("neutral",)
    assert parse_label_list("[happy, 'sad'") == ("happy", "sad")  # malformed: still split


def test_jsonl_reader_drops_bad_rows_by_cause_or_raises_when_strict(tmp_path):
    p = tmp_path / "m.jsonl"
    lines = [
        {"name": "a", "video": "v/a.mp4", "subtitle": "hi", "emotions": ["happy"]},
        {"name": "a", "video": "v/a2.mp4"},
        {"name": "b"},
        {"name": "c", "video": "v/c.mp4", "emotions": 3},
        {"name": "d", "audio": "/abs/d.wav"},
    ]
    p.write_text("\n".join(json.dumps(r) for r in lines) + "\n{not json\n")
    samples, report = read_jsonl(p)
    assert [s.name for s in samples] == ["a", "d"] and samples[0].video == tmp_path / "v" / "a.mp4"
    assert samples[1].audio == Path("/abs/d.wav") and samples[1].video is None
    assert report.dropped == Counter(
        {
            "duplicate name": 1,
            "has neither 'video' nor 'audio'": 1,
            "'emotions' must be a list of strings": 1,
            "not valid JSON": 1,
        }
    )
    with pytest.raises(ManifestError, match=r"m.jsonl:2: duplicate name"):
        read_jsonl(p, strict=True)
    s2, _ = read_source({"format": "jsonl", "path": "m.jsonl", "ratio": 2}, base_dir=tmp_path)
    assert s2 == samples
    with pytest.raises(ValueError, match="unknown data source format 'csv'"):
        read_source({"format": "csv"})


def _samples(prefix: str, n: int) -> list[Sample]:
    return [Sample(name=f"{prefix}{i}", video=Path(f"{prefix}{i}.mp4")) for i in range(n)]


def test_read_manifest_names_the_file_and_line_of_a_bad_row(tmp_path):
    p = tmp_path / "m.jsonl"
    good = json.dumps({"name": "a", "video": "a.mp4"})
    for body, cause in [("{oops", r"m\.jsonl:3: not valid JSON \(Expecting property name"),
                        ('"a string"', r"m\.jsonl:3: expected a JSON object, found str"),
                        (good, r"m\.jsonl:3: duplicate name 'a' \(first on line 1\)")]:
        p.write_text(f"{good}\n\n{body}\n")
        with pytest.raises(ManifestError, match=cause):
            read_manifest(p)


def test_mixture_is_deterministic_and_follows_the_ratios():
    big, small = Source("big", _samples("b", 100), ratio=0.5), Source("small", _samples("s", 10), ratio=0.5)
    e0 = mix_epoch([big, small], epoch=0, seed=42)
    assert e0 == mix_epoch([big, small], epoch=0, seed=42)
    assert e0 != mix_epoch([big, small], epoch=1, seed=42) and e0 != mix_epoch([big, small], epoch=0, seed=7)
    assert len(e0) == 110
    counts = Counter(s.name[0] for s in e0)
    assert counts == {"b": 55, "s": 55}
    small_counts = Counter(s.name for s in e0 if s.name[0] == "s")
    assert set(small_counts.values()) == {5, 6}  # upsampled evenly: whole permutations, then part of one
    assert len({s.name for s in e0 if s.name[0] == "b"}) == 55  # downsampled without repeats
    seen = {s.name for e in range(4) for s in mix_epoch([big, small], e, 42) if s.name[0] == "b"}
    assert len(seen) > 90  # successive epochs reach different big-source samples


def test_epoch_counts_round_to_the_exact_size_and_reject_bad_ratios():
    srcs = [Source("a", _samples("a", 3), 1), Source("b", _samples("b", 3), 1), Source("c", _samples("c", 3), 1)]
    assert epoch_counts(srcs, 10) == [4, 3, 3]
    assert mix_epoch([Source("a", _samples("a", 3), 0.0), Source("b", _samples("b", 2), 1)], 0, 0, epoch_size=4) != []
    with pytest.raises(ValueError, match="no samples"):
        epoch_counts([Source("a", [], 1)], 5)
    with pytest.raises(ValueError, match="ratios must be"):
        epoch_counts([Source("a", _samples("a", 1), -1)], 5)
