"""affectgpt/recipe/checkpoint.py: atomic folders, SIGKILL during a write, keep_last, strict resume paths."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from affectgpt.recipe import checkpoint as ckpt

WRITER = r"""
import sys, torch
from pathlib import Path
from affectgpt.recipe import checkpoint as ckpt
out = Path(sys.argv[1])
big = {"w": torch.zeros(64 * 2**20 // 4)}   # 64 MiB: the write takes long enough to be interrupted
for step in (1, 2):
    print(step, flush=True)
    ckpt.save_checkpoint(out / "checkpoints" / f"step-{step}", big if step == 2 else {"w": torch.ones(4)},
                         "seed: 0\n", {"step": step})
"""


@pytest.mark.integration
def test_sigkill_during_write_leaves_the_last_complete_checkpoint(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    ckpts = tmp_path / "checkpoints"
    assert proc.stdout.readline().strip() == "1"
    deadline = time.time() + 60
    while time.time() < deadline and not (ckpts / ".tmp-step-2" / ckpt.WEIGHTS).exists():
        time.sleep(0.0005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    assert (ckpts / ".tmp-step-2").is_dir() and not (ckpts / "step-2").exists(), sorted(p.name for p in ckpts.iterdir())
    assert ckpt.list_checkpoints(tmp_path) == [ckpts / "step-1"]
    assert ckpt.resolve_resume("auto", tmp_path) == ckpts / "step-1"
    assert torch.equal(ckpt.load_trainable(ckpts / "step-1")["w"], torch.ones(4))
    assert ckpt.remove_partial(tmp_path) == [ckpts / ".tmp-step-2"] and not (ckpts / ".tmp-step-2").exists()


def test_keep_last_and_resume_paths(tmp_path):
    for step in range(1, 6):
        ckpt.save_checkpoint(
            tmp_path / "checkpoints" / f"step-{step}", {"w": torch.full((2,), float(step))}, "", {"step": step}
        )
        ckpt.prune_checkpoints(tmp_path, keep_last=2)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step-4", "step-5"]
    (tmp_path / "checkpoints" / "step-9").mkdir()  # no COMPLETE marker: never picked
    assert ckpt.resolve_resume("auto", tmp_path).name == "step-5"
    assert ckpt.resolve_resume(None, tmp_path) is None and ckpt.resolve_resume("auto", tmp_path / "x") is None
    with pytest.raises(FileNotFoundError, match="step-9: not a complete checkpoint"):
        ckpt.resolve_resume(str(tmp_path / "checkpoints" / "step-9"), tmp_path)


def test_final_is_replaced_whole_and_a_moved_aside_leftover_is_removed(tmp_path):
    final = tmp_path / "checkpoints" / "final"
    for value in (1.0, 2.0):
        ckpt.save_checkpoint(final, {"w": torch.full((2,), value)}, "", {"step": int(value)})
    assert torch.equal(ckpt.load_trainable(final)["w"], torch.full((2,), 2.0))
    assert sorted(p.name for p in final.parent.iterdir()) == ["final"]
    leftover = final.parent / ".final.old-123-abcd"  # a kill between moving the old final aside and deleting it
    leftover.mkdir()
    assert ckpt.remove_partial(tmp_path) == [leftover] and ckpt.is_complete(final)


def test_rng_round_trip_per_rank_and_world_size_check(tmp_path):
    import random

    import numpy as np

    states = []
    for r in range(2):
        torch.manual_seed(r)
        random.seed(r)
        np.random.seed(r)
        states.append(ckpt.rng_state())
    tmp = ckpt.begin(tmp_path / "step-1")
    ckpt.write_files(tmp, {"w": torch.zeros(1)}, "", {"step": 1}, states)
    folder = ckpt.commit(tmp, tmp_path / "step-1")
    ckpt.set_rng_state(ckpt.load_rng(folder, rank=1, world=2))
    got = (torch.rand(3), random.random(), np.random.rand())
    torch.manual_seed(1)
    random.seed(1)
    np.random.seed(1)
    assert torch.equal(got[0], torch.rand(3)) and got[1] == random.random() and got[2] == np.random.rand()
    with pytest.raises(RuntimeError, match="written by 2 process\\(es\\), resumed with 1"):
        ckpt.load_rng(folder, rank=0, world=1)
    assert json.loads((folder / "trainer_state.json").read_text()) == {"step": 1}
