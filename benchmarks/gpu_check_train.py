"""Training rows of the GPU check: the recipe's own step, and DeepSpeed ZeRO-2 in one process."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from gpu_check_rows import Result, Row
from gpu_check_setup import (
    ROOT,
    Ctx,
    cached_batch,
    emer_items,
    fill_throughput,
    make_batch,
    make_items,
    set_grad_ckpt,
    step_flops,
    timed_steps,
    to_device,
    train_mode,
)


def training_setup(row: Row, ctx: Ctx):
    """The row's model in training mode and its micro-batches (frozen-encoder features precomputed when cached)."""
    from affectgpt.data.collate import Collator

    model = ctx.model(row.model)
    micro = []
    for k in range(row.accum):
        if row.lengths == "emer":
            items = emer_items(model, row.batch, row.seq, ctx.args.audio_seconds, seed=1 + k)
            cap = row.pack_length if row.packing else 10**9
            batch = to_device(Collator(model.tokenizer, model.token_plan(), max_length=cap, packing=row.packing)(items),
                              ctx.device)
        else:
            items = make_items(model, row.batch, row.seq, ctx.args.audio_seconds, seed=1 + k)
            batch = make_batch(model, items, row.seq, ctx.device)
        micro.append(cached_batch(model, batch, ctx.amp) if row.features == "cached" else batch)
    set_grad_ckpt(model, row.grad_ckpt, row.ckpt_every)
    train_mode(model)
    return model, micro


def bench_recipe(model, row: Row, ctx: Ctx):
    """``TrainRecipe.around`` the already built model with the shipped trainer config at the row's
    batch, no warmup and no DeepSpeed. Call ``release_recipe`` after the row."""
    from omegaconf import OmegaConf

    from affectgpt.recipe.distributed import Parallel
    from affectgpt.recipe.training import TrainRecipe

    t = OmegaConf.load(ROOT / "conf" / "trainer" / "default.yaml")
    t.update(batch_size=row.batch, grad_accum=row.accum, mixed_precision=ctx.args.mixed_precision, warmup_steps=0,
             max_steps=10**6, deepspeed=None)
    cfg = OmegaConf.create({"trainer": t, "device": ctx.device.type, "seed": 0,
                            "output_dir": str(Path(ctx.args.work) / "recipe")})
    return TrainRecipe.around(model, cfg, Parallel(ctx.accelerator(cfg)))


def recipe_step(recipe, micro: list[dict]) -> float:
    """One optimizer step of the recipe; the step's mean target loss."""
    if not recipe._train_step(micro):
        raise RuntimeError("the recipe skipped the step: non-finite loss")
    return recipe.step_loss


def release_recipe(recipe) -> None:
    """Undo Accelerate's wrapping of the model's forward and drop the optimizer state."""
    recipe.accelerator.unwrap_model(recipe.model, keep_fp32_wrapper=False)
    recipe.optimizer.zero_grad(set_to_none=True)
    recipe.accelerator.free_memory()


def train_row(row: Row, ctx: Ctx, res: Result) -> None:
    """The training recipe's step (``recipe_step``) on the row's micro-batches."""
    model, micro = training_setup(row, ctx)
    a = ctx.args
    base = model.llm.get_base_model() if hasattr(model.llm, "get_base_model") else model.llm
    attn = base.config._attn_implementation
    if row.attn:
        base.set_attn_implementation(row.attn)
    recipe = bench_recipe(model, row, ctx)
    fake = [row.fake_oom]

    def step():
        if fake[0]:
            fake[0] = False
            raise torch.OutOfMemoryError("fake out-of-memory (--dry-run check of the OOM handling)")
        return recipe_step(recipe, micro)  # noqa: F821 - step() only runs before the `del recipe` below

    try:
        step_s, loss = timed_steps(step, a.warmup, a.steps, ctx.device, ctx.seconds_left())
    finally:
        steps_done = recipe.state["step"]  # the recipe's own counter: its step ran
        release_recipe(recipe)
        del recipe
        if row.attn:
            base.set_attn_implementation(attn)
    res.extra["attn_implementation"] = row.attn or attn
    res.loss = loss
    res.extra["recipe_steps"] = steps_done
    if row.lengths == "emer":
        res.seq = round(sum(int(b["attention_mask"].sum()) for b in micro) / sum(len(b["names"]) for b in micro))
        res.batch = row.batch * row.accum
    fill_throughput(res, ctx, step_s, micro, step_flops(model, micro, a.audio_seconds))


def zero2_row(row: Row, ctx: Ctx, res: Result) -> None:
    """The same step through ``deepspeed.initialize`` with ZeRO stage 2 in one process (bf16 on
    CUDA; DeepSpeed casts the model, so the model is dropped afterwards)."""
    for k, v in {
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29511",
    }.items():
        os.environ.setdefault(k, v)
    import deepspeed

    if ctx.device.type == "cpu":
        # DeepSpeed's CPU backend compiles a shared-memory all-reduce (20-120 s of C++) that only
        # several CPU processes use; one process needs none. Its ops table is meant to be edited.
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    model, (batch,) = training_setup(row, ctx)
    a = ctx.args
    bf16 = ctx.device.type == "cuda"
    config = {
        "train_micro_batch_size_per_gpu": row.batch,
        "gradient_accumulation_steps": 1,
        "zero_optimization": {"stage": 2},
        "optimizer": {"type": "AdamW", "params": {"lr": 1e-5, "torch_adam": True}},
        "bf16": {"enabled": bf16},
        "steps_per_print": 10**9,
    }
    engine, *_ = deepspeed.initialize(model=model, model_parameters=[p for p in model.parameters() if p.requires_grad],
                                      config=config)
    ctx.models.pop(row.model, None)  # cast and hooked by DeepSpeed: not reused by later rows

    def step():
        out = engine(batch)
        loss_sum, n = out.loss_sum, out.target_tokens
        loss = loss_sum / n
        engine.backward(loss)
        engine.step()
        return loss.detach()

    flops = step_flops(model, [batch], a.audio_seconds)
    try:
        step_s, loss = timed_steps(step, a.warmup, a.steps, ctx.device, ctx.seconds_left())
        res.extra.update(zero_stage=engine.zero_optimization_stage(), bf16=bf16)
    finally:
        engine.destroy()
    res.loss = loss
    fill_throughput(res, ctx, step_s, [batch], flops)
