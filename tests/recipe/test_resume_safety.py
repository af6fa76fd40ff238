"""Training runs that must not hurt each other or resume wrongly (docs/safety.md): one job per output_dir
(a killed job's lock taken over), tiny weights never written over a user's folder, resume=auto past a
damaged checkpoint, resume refused when the config changed what exactness needs, DeepSpeed's pickled
state only from the run's own folder."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from affectgpt.core.runlock import FolderLocked, acquire
from affectgpt.recipe import checkpoint as ckpt
from helpers import ROOT, cache_arg, env, losses, run, train_cmd

HOLD_LOCK = "import sys, time\nfrom affectgpt.core.runlock import acquire\nacquire(sys.argv[1], 'a job')\n" \
            "print('locked', flush=True)\ntime.sleep(600)\n"


def error_lines(r) -> list[str]:
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    return [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]


@pytest.mark.integration
def test_a_second_train_on_one_output_dir_is_refused_and_a_killed_ones_lock_taken_over(tmp_path, data):
    out, cache = tmp_path / "run", cache_arg(data)
    first = subprocess.Popen(train_cmd(out, data, cache, "trainer.max_steps=100000"), cwd=ROOT, env=env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and first.poll() is None and not (out / "config.yaml").is_file():
            time.sleep(0.1)
        assert first.poll() is None, "the first run ended before the second started"
        second = run(train_cmd(out, data, cache, "trainer.max_steps=1"))
        assert second.returncode == 2, second.stderr[-3000:]
        [line] = error_lines(second)
        assert f"pid {first.pid} on " in line and "python train.py" in line and str(out) in line
        assert first.poll() is None  # the first run goes on
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(60)
    third = run(train_cmd(out, data, cache, "trainer.max_steps=1"))
    assert third.returncode == 0, third.stderr[-3000:]
    assert f"took over the lock {out / '.affectgpt.lock'} of pid {first.pid} on " in third.stderr


@pytest.mark.integration
def test_lock_names_the_holder_and_a_killed_holder_is_taken_over(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path)], cwd=ROOT, env=env(),
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(FolderLocked, match=rf"in use by pid {holder.pid} on .*a job"):
            acquire(tmp_path, "second")
    finally:
        holder.kill()
        holder.wait(30)
    lock = acquire(tmp_path, "third")
    assert lock.took_over["pid"] == holder.pid and f"pid {holder.pid}" in lock.describe_takeover()
    lock.release()
    again = acquire(tmp_path, "fourth")  # a clean release leaves nothing to take over
    assert again.took_over is None
    again.release()


@pytest.mark.integration
def test_tiny_assets_never_replace_a_folder_they_did_not_make(tmp_path, data):
    mine = tmp_path / "my-project"
    mine.mkdir()
    (mine / "thesis.tex").write_text("three years of work")
    r = run(train_cmd(tmp_path / "out", data, f"model.tiny_assets={mine}", "trainer.max_steps=1"))
    assert r.returncode == 2, r.stderr[-3000:]
    [line] = error_lines(r)
    assert str(mine) in line and "ASSETS.json" in line and "model.tiny_assets" in line
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.tex"]
    assert (mine / "thesis.tex").read_text() == "three years of work"


def _copy_reference(reference, dest):
    shutil.copytree(reference, dest)
    return dest


# The reference run's settings (helpers.REFERENCE_STEPS) with what a resume may change: more steps, another
# save cadence, another log cadence.
RESUME_ALLOWED = ["trainer.max_steps=9", "trainer.save_every=3", "trainer.keep_last=3", "features.shard_size=8",
                  "trainer.log_every=1", "trainer.resume=auto"]


@pytest.mark.integration
def test_resume_auto_falls_back_over_an_incomplete_checkpoint_and_allowed_changes_pass(reference, tmp_path, data):
    out = _copy_reference(reference, tmp_path / "run")
    (out / "checkpoints" / "step-8" / "optimizer.pt").unlink()  # newest step checkpoint, damaged after it was written
    r = run(train_cmd(out, data, *RESUME_ALLOWED, cache_arg(data)))
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"skipped {out / 'checkpoints' / 'step-8'}, incomplete (missing optimizer.pt)" in r.stderr
    assert f"resumed from {out / 'checkpoints' / 'step-6'} at step 6" in r.stderr
    assert losses(out)[:6] == losses(reference)[:6] and len(losses(out)) == 9


@pytest.mark.integration
def test_resume_with_another_batch_size_or_seed_is_refused_naming_each_key(reference, tmp_path, data):
    out = _copy_reference(reference, tmp_path / "run")
    before = (out / "config.yaml").read_bytes()
    r = run(train_cmd(out, data, *RESUME_ALLOWED, cache_arg(data), "trainer.batch_size=2", "seed=3"))
    assert r.returncode == 2, r.stderr[-3000:]
    [line] = error_lines(r)
    changes = line.split("in what an exact resume needs: ")[1].split(". Resume with")[0].split("; ")
    assert changes == ["seed: 0 in the checkpoint, 3 now", "trainer.batch_size: 4 in the checkpoint, 2 now"], line
    assert (out / "config.yaml").read_bytes() == before  # refused before anything was written


def test_resume_rules_are_an_allow_list():
    saved = {"seed": 0, "output_dir": "/a", "trainer": {"max_steps": 8, "batch_size": 4, "grad_accum": 1},
             "model": {"llm": {"lora": {"r": 64}}}, "eval": {"max_samples": 2}}
    now = {"seed": 0, "output_dir": "/b", "trainer": {"max_steps": 20, "batch_size": 4, "grad_accum": 2,
                                                       "new_option": True},
           "model": {"llm": {"lora": {"r": 8}}}, "eval": {"max_samples": 0}}
    assert ckpt.resume_changes(saved, now) == [
        "model.llm.lora.r: 64 in the checkpoint, 8 now",
        "trainer.grad_accum: 1 in the checkpoint, 2 now",
        "trainer.new_option: (absent) in the checkpoint, true now",  # unknown keys are compared, not waved through
    ]


def test_model_keys_a_checkpoint_lacks_are_unchanged_where_they_hold_the_builders_default():
    # a checkpoint written before the model group had a schema lists only the keys its yaml gave
    saved = {"model": {"vision": {"frames": 8}, "llm": {"lora": {"r": 64}}}}
    now = {"model": {"vision": {"frames": 8, "kind": "open_clip"}, "llm": {"lora": {"r": 64, "dropout": 0.05}}}}
    assert ckpt.resume_changes(saved, now) == []
    now["model"]["vision"]["kind"] = "hf_clip"
    assert ckpt.resume_changes(saved, now) == ['model.vision.kind: (absent) in the checkpoint, "hf_clip" now']



def test_data_keys_added_since_a_checkpoint_are_unchanged_where_they_hold_the_schemas_default():
    # a checkpoint of the release before data.subtitle and data.asr existed: they are absent from its config
    saved = {"data": {"kind": "synthetic", "max_bad_fraction": 0.0}}
    now = {"data": {"kind": "synthetic", "max_bad_fraction": 0.0, "subtitle": "given",
                    "asr": {"model": "auto", "language": None}}}
    assert ckpt.resume_changes(saved, now) == []
    now["data"]["subtitle"] = "auto"
    assert ckpt.resume_changes(saved, now) == ['data.subtitle: (absent) in the checkpoint, "auto" now']

def _checkpoint(folder):
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.ones(2))])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    return ckpt.save_checkpoint(folder, {"w": torch.ones(2)}, "seed: 0\n", {"step": 2}, opt, sched)


def test_is_complete_means_every_file_the_checkpoint_was_written_with(tmp_path):
    folder = _checkpoint(tmp_path / "checkpoints" / "step-2")
    assert ckpt.missing_files(folder) == []
    (folder / "rng_torch.pt").unlink()
    assert ckpt.missing_files(folder) == ["rng_torch.pt"]
    folder = _checkpoint(tmp_path / "checkpoints" / "step-3")
    with open(folder / "optimizer.pt", "r+b") as f:
        f.truncate(10)
    assert ckpt.missing_files(folder)[0].startswith("optimizer.pt (10 of ")
    assert ckpt.resolve_resume("auto", tmp_path) is None  # both damaged: nothing whole to resume from
    with pytest.raises(FileNotFoundError, match="missing optimizer.pt"):
        ckpt.resolve_resume(str(folder), tmp_path)


def test_deepspeed_state_from_outside_output_dir_needs_trust_pickle(tmp_path):
    downloaded = _checkpoint(tmp_path / "downloads" / "step-2")
    (downloaded / ckpt.DEEPSPEED_DIR).mkdir()
    out = tmp_path / "run"
    saved = {"seed": 0}
    with pytest.raises(ckpt.ResumeRefused, match="pickle.*trainer.trust_pickle=true"):
        ckpt.check_resume(downloaded, saved, out, deepspeed=True, trust_pickle=False)
    ckpt.check_resume(downloaded, saved, out, deepspeed=True, trust_pickle=True)
    ckpt.check_resume(downloaded, saved, out, deepspeed=False, trust_pickle=False)  # no DeepSpeed: never read
    own = tmp_path / "run" / "checkpoints" / "step-2"
    shutil.copytree(downloaded, own)
    ckpt.check_resume(own, saved, out, deepspeed=True, trust_pickle=False)  # the run's own checkpoint
    assert os.path.isdir(own / ckpt.DEEPSPEED_DIR)
