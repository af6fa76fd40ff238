"""Exact resume, SIGKILL at any moment, data sharding and the loss guards of affectgpt/recipe/training.py."""

from __future__ import annotations

import math
import signal
import subprocess
import time

import pytest

from helpers import (
    REFERENCE_STEPS,
    ROOT,
    cache_arg,
    compose,
    env,
    losses,
    max_weight_diff,
    run,
    train_cmd,
    weights,
)

STEPS = REFERENCE_STEPS


@pytest.fixture(scope="module")
def cache(data):
    return cache_arg(data)


def test_sampler_shards_each_epoch_without_repeats():
    from affectgpt.recipe.training import ResumableBatches

    one = ResumableBatches(22, 4, seed=5)
    ranks = [ResumableBatches(22, 2, seed=5, rank=r, world=2) for r in range(2)]
    for epoch in range(3):
        for s in (one, *ranks):
            s.set_position(epoch, 0)
        single = list(one)
        shards = [list(s) for s in ranks]
        assert len(single) == 5 and all(len(s) == 5 for s in shards)  # 22 // (2*2): the last 2 samples wait
        for b, batch in enumerate(single):  # the ranks' slices make up one process's batch
            assert shards[0][b] + shards[1][b] == batch
        seen = [i for s in shards for batch in s for i in batch]
        assert len(seen) == len(set(seen)) == 20
    one.set_position(1, 3)  # a resumed position yields exactly the rest of the epoch
    rest = list(one)
    one.set_position(1, 0)
    assert rest == list(one)[3:]


@pytest.mark.integration
def test_stop_then_resume_equals_uninterrupted(reference, tmp_path, data, cache):
    out = tmp_path / "b"
    r = run(train_cmd(out, data, *STEPS, cache, "trainer.stop_at_step=4"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert not (out / "checkpoints" / "final").exists() and (out / "checkpoints" / "step-4" / "COMPLETE").is_file()
    assert len(losses(out, "step-4")) == 4
    r = run(train_cmd(out, data, *STEPS, cache, "trainer.resume=auto"))
    assert r.returncode == 0, r.stderr[-3000:]
    log = r.stdout + r.stderr
    assert "resumed from" in log and "at step 4" in log
    a, b = losses(reference), losses(out)
    assert len(a) == len(b) == 8
    assert max(abs(x - y) for x, y in zip(a, b, strict=False)) <= 1e-6, (a, b)
    assert max_weight_diff(weights(reference), weights(out)) <= 1e-6
    assert [p.name for p in sorted((out / "checkpoints").iterdir())] == ["final", "step-6", "step-8"]  # keep_last=2


@pytest.mark.integration
def test_sigkill_during_checkpoint_write_then_resume(reference, tmp_path, data, cache):
    out = tmp_path / "c"
    ckpts = out / "checkpoints"
    proc = subprocess.Popen(train_cmd(out, data, *STEPS, cache), cwd=ROOT, env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    try:  # five checkpoint writes (steps 2, 4, 6, 8, final): kill inside the first one seen
        while proc.poll() is None and time.time() < deadline:
            if ckpts.is_dir() and any(p.name.startswith(".tmp-") for p in ckpts.iterdir()):
                break
            time.sleep(0.0005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, "training ended before a checkpoint write was caught in progress"
    partial = [p.name for p in ckpts.iterdir() if p.name.startswith(".tmp-")]
    assert partial, f"the kill did not land inside a checkpoint write: {sorted(p.name for p in ckpts.iterdir())}"
    r = run(train_cmd(out, data, *STEPS, cache, "trainer.resume=auto"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert not any(p.name.startswith(".") for p in ckpts.iterdir())  # no temporary or moved-aside folder left
    a, b = losses(reference), losses(out)
    assert max(abs(x - y) for x, y in zip(a, b, strict=False)) <= 1e-6 and len(b) == 8, (partial, a, b)
    assert max_weight_diff(weights(reference), weights(out)) <= 1e-6


# ------------------------------------------------------------------------------------------- guards
@pytest.fixture(scope="module")
def recipe(tmp_path_factory, data, cache):
    from affectgpt.recipe.training import TrainRecipe

    r = TrainRecipe(compose(tmp_path_factory.mktemp("guard"), data, cache, "trainer.max_steps=6",
                            "trainer.max_bad_steps=2"))
    r.setup()
    return r


@pytest.mark.integration
def test_nonfinite_loss_skips_the_step_then_aborts(recipe, monkeypatch, caplog):
    import torch

    real_forward = type(recipe.model).forward
    calls = {"n": 0}

    def flaky(self, batch):  # the second step's loss is NaN, then every loss from the fourth on
        calls["n"] += 1
        out = real_forward(self, batch)
        if calls["n"] == 2 or calls["n"] >= 4:
            out.loss_sum = out.loss_sum * float("nan")
        return out

    monkeypatch.setattr(type(recipe.model), "forward", flaky)
    before = {k: v.clone() for k, v in recipe.model.trainable_state_dict().items()}
    with pytest.raises(RuntimeError, match=r"2 non-finite losses in a row \(trainer.max_bad_steps=2\)"):
        recipe.train()
    assert recipe.state["step"] == 2  # forward calls 1 and 3 stepped; 2 was skipped; 4 and 5 aborted
    assert all(math.isfinite(h["loss"]) for h in recipe.state["history"] if "loss" in h)
    after = recipe.model.trainable_state_dict()
    assert all(torch.isfinite(v).all() for v in after.values())
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert "non-finite loss at step 2" in caplog.text


def test_fully_masked_batch_is_an_error_naming_its_samples(recipe):
    batch = next(iter(recipe.loader))
    batch["labels"][1:] = -100
    with pytest.raises(RuntimeError, match="have no target tokens") as e:
        recipe.model(batch)
    assert all(name in str(e.value) for name in batch["names"][1:])


# ------------------------------------------------------------------------------------------- configs
def test_every_shipped_cluster_config_loads(tmp_path):
    """Experiments compose; Accelerate configs parse; DeepSpeed JSONs validate once the trainer fills "auto"."""
    import copy
    import json

    from accelerate.commands.config.config_args import load_config_from_file
    from omegaconf import OmegaConf

    from affectgpt.recipe.distributed import fill_deepspeed_auto

    for exp in sorted((ROOT / "conf" / "experiment").glob("*.yaml")):
        cfg = compose(tmp_path, tmp_path / "data", f"experiment={exp.stem}")
        if exp.stem == "grpo":  # the tiny default's GRPO stage (docs/grpo.md), no cluster settings
            assert cfg.trainer.stage == "grpo" and cfg.model.name == "tiny"
            continue
        # The released AffectGPT trained in fp16 (its experiment continues it as released); the others use bf16.
        precision = "fp16" if exp.stem == "affectgpt-official" else "bf16"
        assert cfg.model.name == exp.stem.removesuffix("-grpo") and cfg.trainer.mixed_precision == precision, exp
        assert str(cfg.features.cache_dir).endswith(f"features-{cfg.model.name}")
    for path in sorted((ROOT / "conf" / "accelerate").glob("*.yaml")):
        acc = load_config_from_file(str(path))
        if acc.distributed_type == "DEEPSPEED":
            assert (ROOT / acc.deepspeed_config["deepspeed_config_file"]).is_file(), path
    ds = pytest.importorskip("deepspeed.runtime.config")
    names = sorted(p.name for p in (ROOT / "conf" / "deepspeed").glob("*.json"))
    assert names == ["zero2.json", "zero3.json", "zero3_offload.json"]
    trainer = OmegaConf.create({"batch_size": 4, "grad_accum": 2, "grad_clip": 1.0})
    for name in names:
        raw = json.loads((ROOT / "conf" / "deepspeed" / name).read_text())
        filled = copy.deepcopy(raw)
        fill_deepspeed_auto(filled, trainer, world=1)
        filled["bf16"]["enabled"] = filled["fp16"]["enabled"] = False  # Accelerate fills these from the precision
        filled["optimizer"]["params"].update(lr=1e-4, weight_decay=0.0)  # ... and these from the optimizer
        conf = ds.DeepSpeedConfig(filled)
        assert conf.train_batch_size == 8 and conf.gradient_clipping == 1.0
        assert conf.zero_optimization_stage == (2 if name == "zero2.json" else 3)


# ------------------------------------------------------------------------------------------- library equivalents
def test_accelerate_set_seed_gives_the_hand_written_seeding_streams():
    """training.py seeds with accelerate's set_seed; it draws what seeding each generator by hand drew."""
    import random

    import numpy as np
    import torch
    from accelerate.utils import set_seed

    def draws():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    for seed in (0, 7919, 2**31 + 5):
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        by_hand = draws()
        set_seed(seed)
        assert draws() == by_hand


def test_lr_schedule_against_transformers_cosine_with_min_lr():
    """Equal from the warmup to max_steps; in the warmup transformers' starts at 0 (a wasted first step) where
    ours starts at 1/warmup, and past max_steps (a resumed run with a larger budget) theirs climbs again."""
    import torch
    from transformers import get_cosine_with_min_lr_schedule_with_warmup

    from affectgpt.recipe.training import lr_lambda

    warmup, total, ratio = 5, 40, 0.1
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    theirs = get_cosine_with_min_lr_schedule_with_warmup(opt, warmup, total, min_lr_rate=ratio).lr_lambdas[0]
    ours = lr_lambda(warmup, total, ratio)
    assert all(abs(ours(s) - theirs(s)) < 1e-12 for s in range(warmup, total + 1))
    assert [ours(s) for s in range(warmup)] == [theirs(s + 1) for s in range(warmup)]
    assert theirs(0) == 0.0 and ours(0) == 1 / warmup
    assert ours(total + 5) == ratio < theirs(total + 5)
