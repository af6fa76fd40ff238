"""Failures as a user meets them, through the shipped commands on real files: exit code 2 for bad input,
1 for a run that failed (a full disk), and stderr exactly one line that names the file (docs/safety.md).

The commands run in this process (``run_in_process``: the same argv, exit code and stderr), except the cases in
``IN_A_PROCESS``: a real process of ``infer.py`` that builds the model and reads the weights
before it fails (so nothing a library prints on import or load, C++ warnings included, can add a line) and one
of ``python -m affectgpt.eval``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ENV, ROOT, recomplete, run_in_process

pytestmark = pytest.mark.integration

SMALL_TRAIN = ["data.n_train=16", "data.n_val=2", "data.n_test=6", "trainer.batch_size=4", "trainer.max_steps=3",
               "trainer.standardize_samples=16", "trainer.num_workers=0", "eval.max_samples=2", "eval.max_new_tokens=2"]


def run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env={**ENV, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=timeout)


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr[-3000:]
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def broken(artifacts, tmp_path_factory) -> dict:
    """Damaged copies of the session's checkpoint and export, bad manifests and prediction files."""
    import torch

    base = tmp_path_factory.mktemp("broken")
    ckpt, data = artifacts["checkpoint"], artifacts["data"]
    out = {"data": data, "base": base, "video": data / "clips" / "syn_val_00001.mp4", "checkpoint": ckpt}
    out["truncated"] = shutil.copytree(ckpt, base / "truncated")
    weights = out["truncated"] / "trainable.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    out["pickle"] = shutil.copytree(ckpt, base / "pickle")  # an optimizer.pt that pickles a function
    torch.save({"state": {}, "param_groups": [], "hook": print}, out["pickle"] / "optimizer.pt")
    recomplete(out["pickle"])  # a hostile checkpoint comes with a consistent COMPLETE marker
    out["no_rng"] = shutil.copytree(ckpt, base / "no rng")  # a space in the path on purpose
    (out["no_rng"] / "rng_torch.pt").unlink()
    out["no_key"] = shutil.copytree(artifacts["adapter"], base / "no_key")
    meta = json.loads((out["no_key"] / "affectgpt.json").read_text())
    del meta["tokenizer"]
    (out["no_key"] / "affectgpt.json").write_text(json.dumps(meta))
    out["bad_rows"] = base / "bad.jsonl"
    out["bad_rows"].write_text('{"name": "a", "video": "a.mp4", "emotions": ["happy"]}\nnot json\n')
    out["empty"] = base / "empty.jsonl"
    out["empty"].write_text("")
    out["mismatch"] = base / "mismatch.jsonl"
    out["mismatch"].write_text('{"name": "clip_x", "emotions": ["happy"]}\n')
    out["object_name"] = base / "object_name.jsonl"
    out["object_name"].write_text('{"name": "syn_val_00001", "emotions": ["sad"]}\n'
                                  '{"name": {"id": 2}, "emotions": ["happy"]}\n')
    return out


def _train(b: dict, out: str, *extra: str) -> list[str]:
    return ["train.py", f"output_dir={b['base'] / out}", f"data.root={b['data']}", *SMALL_TRAIN, *extra]


# (id, argv from the fixture's paths, exit code, text the one line holds)
CASES = [
    ("infer: truncated safetensors", lambda b: ["infer.py", f"checkpoint={b['truncated']}", f"video={b['video']}"],
     2, lambda b: f"{b['truncated'] / 'trainable.safetensors'}: Error while deserializing header"),
    ("demo: truncated safetensors", lambda b: ["demo.py", f"checkpoint={b['truncated']}"],
     2, lambda b: f"{b['truncated'] / 'trainable.safetensors'}: "),
    ("infer: export missing a key", lambda b: ["infer.py", f"checkpoint={b['no_key']}", f"video={b['video']}"],
     2, lambda b: f"{b['no_key']}: missing key 'tokenizer'"),
    ("export: truncated safetensors", lambda b: ["-m", "affectgpt.export", f"checkpoint={b['truncated']}",
                                                 f"output={b['base'] / 'never'}"],
     2, lambda b: f"{b['truncated'] / 'trainable.safetensors'}: "),
    ("ablation: truncated safetensors", lambda b: ["-m", "affectgpt.apps.ablation", f"checkpoint={b['truncated']}",
                                                   f"manifest={b['data'] / 'val.jsonl'}"],
     2, lambda b: f"{b['truncated'] / 'trainable.safetensors'}: "),
    ("train: resume refuses a pickle", lambda b: _train(b, "t1", f"trainer.resume={b['pickle']}", "seed=1"),
     2, lambda b: f"{b['pickle'] / 'optimizer.pt'}: refused to unpickle"),
    ("train: checkpoint missing a file", lambda b: _train(b, "t2", f"trainer.resume={b['no_rng']}"),
     2, lambda b: f"trainer.resume={b['no_rng']}: not a complete checkpoint (missing rng_torch.pt"),
    ("train: bad manifest rows", lambda b: ["train.py", f"output_dir={b['base'] / 't3'}", "data=manifest",
                                            f"data.root={b['base']}", f"data.train_manifest={b['bad_rows']}",
                                            f"data.val_manifest={b['bad_rows']}"],
     2, lambda b: f"{b['bad_rows']}:2: not valid JSON"),
    ("features: bad manifest rows", lambda b: ["-m", "affectgpt.apps.features", f"data.root={b['data']}",
                                               "data=manifest",
                                               f"data.train_manifest={b['bad_rows']}",
                                               f"features.cache_dir={b['base'] / 'cache'}"],
     2, lambda b: f"{b['bad_rows']}:2: not valid JSON"),
    ("eval: empty prediction file", lambda b: ["-m", "affectgpt.eval", "--pred", str(b["empty"]),
                                               "--gold", str(b["data"] / "val.jsonl")],
     2, lambda b: f"{b['empty']}: no predictions; expected rows named as in {b['data'] / 'val.jsonl'}: "
                  f"'syn_val_00001', 'syn_val_00002' (2 in all)"),
    ("eval: no name matches", lambda b: ["-m", "affectgpt.eval", "--pred", str(b["mismatch"]),
                                         "--gold", str(b["data"] / "val.jsonl")],
     2, lambda b: f"{b['mismatch']}: none of its names is in {b['data'] / 'val.jsonl'}; expected names such as "
                  f"'syn_val_00001', 'syn_val_00002' (2 in all), found 'clip_x' (1 in all)"),
    ("eval: object as a name", lambda b: ["-m", "affectgpt.eval", "--pred", str(b["object_name"]),
                                          "--gold", str(b["data"] / "val.jsonl")],
     2, lambda b: f"{b['object_name']}:2: 'name' must be a string, found an object"),
    ("eval.unibench: empty prediction file", lambda b: ["-m", "affectgpt.apps.unibench_score",
                                                        "--gold", str(_empty_dir(b)),
                                                        "--pred", str(_unibench_empty(b))],
     2, lambda b: f"{b['base'] / 'ub' / 'mer2023.jsonl'}: no predictions (empty file)"),
]


def _empty_dir(b: dict) -> Path:
    (b["base"] / "ub_gold").mkdir(exist_ok=True)
    return b["base"] / "ub_gold"


def _unibench_empty(b: dict) -> Path:
    (b["base"] / "ub").mkdir(exist_ok=True)
    path = b["base"] / "ub" / "mer2023.jsonl"
    path.write_text("")
    return path


# The cases run in their own process; the others run in this one (each saves a process's 5-15 s of imports and
# model building: the file went from 138 s to 39 s on one core, 16 s of it the session's shared checkpoint)
IN_A_PROCESS = {"infer: truncated safetensors", "eval: empty prediction file"}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_a_user_error_is_one_line_naming_the_file(broken, case):
    name, argv, code, says = case
    r = run(*argv(broken)) if name in IN_A_PROCESS else run_in_process(argv(broken))
    line = one_line(r.stderr)
    assert r.returncode == code, line
    assert says(broken) in line, line


def test_verbose_true_shows_the_traceback_and_the_libraries(broken, capsys):
    """In process: the same error line last, the traceback (and library output) before it."""
    from affectgpt.apps.cli import run as run_command
    from affectgpt.apps.infer import INFER
    from affectgpt.apps.infer import main as infer_main

    argv = [f"checkpoint={broken['truncated']}", f"video={broken['video']}"]
    assert run_command(INFER, infer_main, argv) == 2
    quiet = capsys.readouterr().err
    assert run_command(INFER, infer_main, [*argv, "verbose=true"]) == 2
    loud = capsys.readouterr().err
    assert quiet.count("\n") == 1 and "Traceback (most recent call last)" in loud
    assert loud.splitlines()[-1] == quiet.strip()


def test_a_quiet_command_keeps_deepspeeds_warnings_off_stdout(capfd):
    """DeepSpeed's logger ("DeepSpeed", its own stdout handler) sets WARNING when it loads, after the
    command quieted the libraries: export printed "[WARNING] ... Setting accelerator to CPU" on stdout.
    A quiet command lets only its errors through, to stderr's error line or DeepSpeed's own handler."""
    from affectgpt.core import errors

    errors.quiet_libraries(verbose=False)
    from deepspeed.utils import logger
    from deepspeed.utils.logging import LoggerFactory

    handlers, level = logger.handlers[:], logger.level
    try:
        LoggerFactory.create_logger("DeepSpeed")  # what loading DeepSpeed does: level WARNING, one more handler
        logger.warning("probe-warning")
        logger.info("probe-info")
        logger.error("probe-error")
    finally:  # the added handler writes to this test's captured stdout: later tests in this worker keep none
        logger.handlers[:], logger.level = handlers, level
    out = capfd.readouterr().out
    assert "probe-warning" not in out and "probe-info" not in out
    assert "probe-error" in out  # the handler still writes: only the level below ERROR is dropped


def test_an_overlong_subtitle_is_a_problem_for_data_check(broken, capsys):
    """The row that would stop training (no room for the target within max_length) is named, exit 1."""
    from affectgpt.apps.check import main

    rows = [json.loads(line) for line in (broken["data"] / "val.jsonl").read_text().splitlines()]
    rows[1]["subtitle"] = "I cannot stop talking about the concert, " * 150
    manifest = broken["data"] / "long_subtitle.jsonl"  # beside val.jsonl: the media paths stay relative
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main([f"path={manifest}"]) == 0  # without a training config the length cannot be known
    capsys.readouterr()
    assert main([f"path={manifest}", f"train_config={broken['checkpoint']}"]) == 1
    out = capsys.readouterr().out
    assert "TOO LONG for max_length: 1\n" in out, out
    assert f"sample {rows[1]['name']!r}: prompt of " in out and "within max_length=512" in out, out
    assert rows[0]["name"] not in out.split("TOO LONG")[1].split("\n")[1]
    assert out.rstrip().endswith("PROBLEMS FOUND: fix the rows and files listed above before training")


# ----------------------------------------------------------------------------- a full disk, for real
@pytest.fixture
def full_disk(tmp_path):
    """A 256 KiB tmpfs (needs root and mount rights; skipped elsewhere)."""
    mnt = tmp_path / "small disk"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "--lazy", str(mnt)], check=True)  # lazy: a failed test may hold a file open


def test_the_atomic_writers_say_no_space_left_on_device(full_disk):
    import torch
    from safetensors.torch import save_file

    from affectgpt.core.errors import classify
    from affectgpt.core.fileio import atomic_dir, atomic_path, atomic_write

    big = {"w": torch.zeros(200_000)}  # 800 KB: more than the disk holds

    def with_torch(p):
        with atomic_path(p) as tmp:
            torch.save(big, tmp)

    def with_safetensors(p):
        with atomic_path(p) as tmp:
            save_file(big, str(tmp))

    def with_text(p):
        with atomic_write(p) as f:
            f.write("x" * 800_000)

    def with_a_folder(p):
        with atomic_dir(p) as tmp:
            save_file(big, str(tmp / "model.safetensors"))

    for write, name in ((with_torch, "a.pt"), (with_safetensors, "b.safetensors"), (with_text, "c.txt"),
                        (with_a_folder, "export")):
        with pytest.raises(OSError) as e:
            write(full_disk / name)
        assert classify(e.value) == (1, f"no space left on device: {full_disk / name}"), (name, e.value.__cause__)
        assert list(full_disk.iterdir()) == []  # nothing half-written left behind


def test_export_to_a_full_disk_is_one_line_exit_1(artifacts, full_disk):
    out = full_disk / "export"
    r = run_in_process(["-m", "affectgpt.export", f"checkpoint={artifacts['checkpoint']}", f"output={out}"])
    assert r.returncode == 1 and one_line(r.stderr) == f"error: no space left on device: {out}", r.stderr[-2000:]
    assert not out.exists()
