"""What an artifact or a user's file cannot make the loading commands do (docs/safety.md): run code shipped
with a downloaded export or checkpoint, load weights whose bytes differ from the export's record, append
to or cut a file that is not a prediction file, or share an output file with another job."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from helpers import run_in_process, run_python

pytestmark = pytest.mark.integration

EVIL = """from pathlib import Path
Path({marker!r}).write_text("the artifact's code ran")
from transformers import PreTrainedTokenizerFast


class EvilTokenizer(PreTrainedTokenizerFast):
    pass
"""


def infer(checkpoint, *args):
    """infer.py in this process (same argv, exit code and output; test_infer.py runs it in its own)."""
    return run_in_process(["infer.py", f"checkpoint={checkpoint}", *args])


def error_lines(r) -> list[str]:
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    return [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]


def a_clip(artifacts) -> Path:
    row = json.loads((artifacts["data"] / "test.jsonl").read_text().splitlines()[0])
    return artifacts["data"] / row["video"]


def plant_remote_code(tokenizer_dir: Path, marker: Path) -> None:
    """A tokenizer folder whose config maps AutoTokenizer to a Python file in it (what transformers runs
    under trust_remote_code=True): the file writes ``marker`` when imported."""
    (tokenizer_dir / "evil.py").write_text(EVIL.format(marker=str(marker)))
    cfg_path = tokenizer_dir / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["auto_map"] = {"AutoTokenizer": [None, "evil.EvilTokenizer"]}
    cfg_path.write_text(json.dumps(cfg))


def test_an_export_that_asks_for_remote_code_is_refused_unless_the_command_line_says_so(artifacts, tmp_path):
    export = tmp_path / "downloaded"
    shutil.copytree(artifacts["adapter"], export)
    marker = tmp_path / "ran.txt"
    plant_remote_code(export / "tokenizer", marker)
    meta = json.loads((export / "affectgpt.json").read_text())
    meta["model"]["llm"]["trust_remote_code"] = True
    (export / "affectgpt.json").write_text(json.dumps(meta))
    clip = a_clip(artifacts)

    r = infer(export, f"video={clip}", "max_new_tokens=4")
    assert r.returncode == 2, r.stderr[-2000:]
    [line] = error_lines(r)
    assert str(export / "affectgpt.json") in line and "trust_remote_code=true" in line and "command line" in line
    assert not marker.exists()

    r = infer(export, f"video={clip}", "max_new_tokens=4", "trust_remote_code=true")  # the user's own opt-in
    assert r.returncode == 0, r.stderr[-2000:]
    assert marker.read_text() == "the artifact's code ran"


def test_a_checkpoint_config_cannot_turn_remote_code_on(artifacts, tmp_path):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(artifacts["checkpoint"], ckpt)
    cfg = yaml.safe_load((ckpt / "config.yaml").read_text())
    cfg["model"]["llm"]["trust_remote_code"] = True
    (ckpt / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = infer(ckpt, f"video={a_clip(artifacts)}", "max_new_tokens=4")
    assert r.returncode == 2
    [line] = error_lines(r)
    assert str(ckpt / "config.yaml") in line and "trust_remote_code=true" in line
    # export and the ablation read the same config; both refuse it the same way (export in this process: its own
    # process is test_export's CLI test)
    r = run_in_process(["-m", "affectgpt.export", f"checkpoint={ckpt}", f"output={tmp_path / 'out'}"])
    assert r.returncode == 2 and "trust_remote_code=true" in error_lines(r)[0] and not (tmp_path / "out").exists()
    from affectgpt.apps.ablation import untrained_copy

    with pytest.raises(ValueError, match="asks for trust_remote_code=true"):
        untrained_copy(ckpt)


def test_a_flipped_byte_in_an_export_is_named_and_verify_hashes_false_loads_it(artifacts, tmp_path):
    export = tmp_path / "merged"
    shutil.copytree(artifacts["merged"], export)
    weights = sorted((export / "llm").glob("*.safetensors"))[0]
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01  # inside the last tensor's data: safetensors itself notices nothing
    weights.write_bytes(bytes(data))
    clip = a_clip(artifacts)
    r = infer(export, f"video={clip}", "max_new_tokens=4")
    assert r.returncode == 2
    [line] = error_lines(r)
    assert str(weights) in line and "sha256" in line and "verify_hashes=false" in line
    r = infer(export, f"video={clip}", "max_new_tokens=4", "verify_hashes=false")
    assert r.returncode == 0, r.stderr[-2000:]

    extra = export / "llm" / "extra.safetensors"  # a weight file nothing vouches for
    shutil.copy(weights, extra)
    weights.write_bytes(bytes(data[:-3]) + bytes([data[-3] ^ 0x01]) + bytes(data[-2:]))  # restored
    r = infer(export, f"video={clip}", "max_new_tokens=4")
    assert r.returncode == 2 and str(extra) in error_lines(r)[0]


def _notes(path: Path) -> bytes:
    path.write_text("# Notes\n\nFirst paragraph.\n\nThe last paragraph, without a newline at the end.")
    return path.read_bytes()


def test_manifest_output_that_is_not_a_prediction_file_is_refused_and_left_unchanged(artifacts, tmp_path):
    data = artifacts["data"]
    manifest = tmp_path / "manifest.jsonl"
    rows = [json.loads(line) for line in (data / "test.jsonl").read_text().splitlines()[:2]]
    manifest.write_text("".join(json.dumps({**r, "video": str(data / r["video"])}) + "\n" for r in rows))
    train_copy = tmp_path / "train.jsonl"
    shutil.copy(data / "train.jsonl", train_copy)
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps({"name": "a", "emotions": ["happy"], "description": "smiles"}) + "\n")
    torn_foreign = tmp_path / "other.jsonl"  # JSONL rows of another program, the last one cut short
    torn_foreign.write_text(json.dumps({"id": 1}) + "\n" + '{"id": 2, "te')
    cases = {_notes(tmp_path / "notes.md"): tmp_path / "notes.md", manifest.read_bytes(): manifest,
             train_copy.read_bytes(): train_copy, gold.read_bytes(): gold, torn_foreign.read_bytes(): torn_foreign}
    for before, out in cases.items():
        r = infer(artifacts["checkpoint"], f"manifest={manifest}", f"output={out}")
        assert r.returncode == 2, (out, r.stderr[-2000:])
        [line] = error_lines(r)
        assert line.startswith(f"error: {out}") and "output=" in line, line
        assert out.read_bytes() == before, out
        assert not list(tmp_path.glob(f".{out.name}.lock")), "refused before anything was written next to it"


def test_a_second_manifest_run_on_one_output_is_refused_naming_the_holder(artifacts, tmp_path):
    import os

    from affectgpt.core.runlock import acquire

    out = tmp_path / "pred.jsonl"
    row = json.loads((artifacts["data"] / "test.jsonl").read_text().splitlines()[0])
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({**row, "video": str(artifacts["data"] / row["video"])}) + "\n")
    lock = acquire(out, "python infer.py (the first job)", is_file=True)
    try:
        # its own process: a POSIX lock held by this process does not stop this process
        r = run_python(["infer.py", f"checkpoint={artifacts['checkpoint']}", f"manifest={manifest}", f"output={out}"])
    finally:
        lock.release()
    assert r.returncode == 2
    [line] = error_lines(r)
    assert f"pid {os.getpid()} on " in line and "(the first job)" in line and str(out) in line
    assert not out.exists()
