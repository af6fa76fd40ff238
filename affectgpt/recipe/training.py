"""The training recipe: setup (data, model, optimizer), a visible loop, checkpoints, evaluation.

One class in the spirit of torchtune's recipes. Accelerate handles devices, mixed precision,
DDP and DeepSpeed; everything else is plain PyTorch you can read top to bottom.

Exactness: the data order (a mixture of sources' epoch list too) is a pure function of (seed, epoch,
position), every generator (Python, NumPy, torch, per rank) is saved in each checkpoint, and evaluation
restores the generators it touches; so N steps + resume to 2N gives the same losses and weights as 2N steps.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import time
from pathlib import Path

import torch
from accelerate.utils import set_seed
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from affectgpt.core.errors import InputError, RunError
from affectgpt.core.fileio import writing
from affectgpt.data.collate import ClipDataset, Collator, worker_init
from affectgpt.data.splits import load_split, load_train
from affectgpt.model import flops
from affectgpt.model.adapters import pad_features
from affectgpt.model.build import build_model
from affectgpt.model.config import prepare
from affectgpt.recipe import checkpoint as ckpt
from affectgpt.recipe import telemetry
from affectgpt.recipe.distributed import Parallel, make_optimizer, make_parallel
from affectgpt.recipe.features import open_cache
from affectgpt.recipe.groups import optimizer_groups
from affectgpt.runtime.inference import predict

log = logging.getLogger("affectgpt.train")
STOP_FILE = "STOP"  # in output_dir: stop with a checkpoint at the next step, as SIGUSR1 does


class ResumableBatches(torch.utils.data.Sampler):
    """This rank's index batches of one epoch. The permutation is fixed by (seed, epoch); global
    batch b is ``perm[b*G:(b+1)*G]`` with G = batch_size × world, and rank r takes its r-th slice,
    so no sample is seen twice per epoch and the union over ranks equals one process's batch of G.
    ``set_position`` starts at a batch offset, so a resumed run sees exactly the batches left."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.epoch, self.start = 0, 0

    @property
    def batches_per_epoch(self) -> int:
        return self.n // (self.batch_size * self.world)

    def set_position(self, epoch: int, start_batch: int) -> None:
        self.epoch, self.start = epoch, start_batch

    def __len__(self) -> int:
        return max(0, self.batches_per_epoch - self.start)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        size = self.batch_size * self.world
        for b in range(self.start, self.batches_per_epoch):
            chunk = perm[b * size : (b + 1) * size]
            yield chunk[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]


def lr_lambda(warmup: int, total: int, min_ratio: float):
    """Linear warmup then cosine decay to min_ratio × base lr. After the warmup it equals transformers'
    ``get_cosine_with_min_lr_schedule_with_warmup``; during it, that one starts at 0 (a first step
    with lr 0) where this one starts at 1/warmup, so it is kept (tests/recipe/test_training.py shows both)."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


def param_groups(model, t: DictConfig) -> list[dict]:
    """The optimizer groups (``recipe.groups``) with the trainer's learning rates (adapters, LoRA, fully trained
    LLM modules)."""
    adapter, lora = t.lr_adapter or t.lr, t.lr_lora or t.lr
    rates = {"video_adapter": adapter, "audio_adapter": adapter, "fusion": adapter, "llm": lora,
             "llm_extra": t.get("lr_llm_extra") or lora}
    return optimizer_groups(model, t.lr, rates, weight_decay=t.weight_decay)


def fresh_state() -> dict:
    """The trainer state at step 0 (checkpoints save it, a resume restores it)."""
    return {"step": 0, "epoch": 0, "batch_in_epoch": 0, "samples_seen": 0, "bad_samples": 0, "history": []}


class TrainRecipe:
    eval_task = "describe"  # the validation prompt (the GRPO stage evaluates the labels task it trains)
    system: str | None = None  # the system prompt; None: the template's default (data/prompts.py)

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.out = Path(cfg.output_dir)
        self.stop_signal: int | None = None
        self.started = time.time()

    @classmethod
    def around(cls, model, cfg: DictConfig, parallel: Parallel) -> TrainRecipe:
        """A recipe that steps an already built ``model`` (``_train_step`` on micro-batches the caller
        makes) with ``cfg.trainer``'s optimizer and schedule through ``parallel``: no data, no
        checkpoint, no tracker. benchmarks/gpu_check.py times the recipe's own step this way."""
        recipe = cls(cfg)
        recipe._use_parallel(parallel)
        recipe.model = model
        recipe._setup_optimizer()
        recipe.state = fresh_state()
        recipe.meter, recipe.bad_steps = telemetry.Throughput(), 0
        return recipe

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        t = self.cfg.trainer
        self._use_parallel(make_parallel(self.cfg))
        set_seed(self.cfg.seed)  # identical initialisation on every rank
        resume = ckpt.resolve_resume(t.resume, self.out)
        if resume is not None:  # before anything is written: a refused resume leaves output_dir as it was
            ckpt.check_resume(resume, OmegaConf.to_container(self.cfg, resolve=True), self.out, self.deepspeed,
                              bool(t.get("trust_pickle", False)))
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.yaml").write_text(OmegaConf.to_yaml(self.cfg, resolve=True))
            for p in ckpt.remove_partial(self.out):
                log.warning("removed the incomplete checkpoint %s (a killed run's)", p)
        with self.accelerator.main_process_first():  # the synthetic data and tiny weights are written once
            self.train_split = load_train(self.cfg.data)
            self.val_samples = load_split(self.cfg.data, "val")
            with self.parallel.building():
                self._setup_model()
        if self.cfg.data.get("subtitle", "given") == "auto":
            self._auto_subtitles()
        self._setup_data()
        self.state = fresh_state()
        init_from = ckpt.resolve_init_from(t.get("init_from")) if resume is None else None
        if resume is None and init_from is None and self._has_standardizers():
            self._fit_standardizers()  # a resumed or initialised run loads the fitted statistics instead
        self._setup_optimizer()
        set_seed(self.cfg.seed + 7919 * self.rank)  # dropout differs across ranks, not across restarts
        if resume is not None:
            self._resume(resume)
        elif init_from is not None:  # fine-tune from a checkpoint's weights: fresh optimizer, schedule and step 0
            self.parallel.load_trainable(self.model, ckpt.load_trainable(init_from), source=str(init_from))
            log.info("trainable weights initialised from %s", init_from)
        self.tracker = telemetry.init_wandb(self.cfg.wandb, self.out, OmegaConf.to_container(self.cfg, resolve=True)) \
            if self.is_main else None

    def _auto_subtitles(self) -> None:
        """data.subtitle=auto: every training and validation clip's subtitle is its Whisper transcript,
        transcribed once and cached (affectgpt/recipe/transcripts.py)."""
        from affectgpt.recipe.transcripts import transcribe_splits, with_transcripts

        done = transcribe_splits(self.cfg, self.model, {"train": self.train_split.pool, "val": self.val_samples},
                                 self.accelerator)
        self.train_split, self.val_samples = with_transcripts(self.train_split, done["train"]), done["val"]

    def _use_parallel(self, parallel: Parallel) -> None:
        self.parallel = parallel
        self.accelerator, self.deepspeed = parallel.accelerator, parallel.deepspeed
        device = self.accelerator.device
        # MFU in the log: on CUDA by the card's name, elsewhere only with trainer.peak_tflops set.
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
        self.peak_tflops = flops.peak_tflops(name, self.cfg.trainer.get("peak_tflops"))
        self.flop_shape = None
        self.rank, self.world, self.is_main = parallel.rank, parallel.world, parallel.is_main

    def _param_groups(self) -> list[dict]:
        return param_groups(self.model, self.cfg.trainer)

    def _setup_optimizer(self) -> None:
        """Optimizer over the model's groups, both prepared by Accelerate; the warmup + cosine schedule."""
        t = self.cfg.trainer
        self.optimizer = make_optimizer(self._param_groups(), t, self.accelerator, self.cfg.device)
        self.model, self.optimizer = self.accelerator.prepare(self.model, self.optimizer)
        # Not prepared: Accelerate would step it once per process per step.
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(t.warmup_steps, t.max_steps,
                                                                                     t.min_lr_ratio))

    def _setup_model(self) -> None:
        # The tiny config's assets are written on first use with their own seeds: before the adapters' seed.
        plain = prepare(self.cfg.model)
        torch.manual_seed(self.cfg.seed)  # adapter and LoRA init
        self.model = build_model(plain, device=self.accelerator.device)
        self.plan = self.model.token_plan()
        self.tokenizer = self.model.tokenizer
        n_train = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        n_all = sum(p.numel() for p in self.model.parameters())
        log.info("model: %.2fM parameters, %.3fM trainable", n_all / 1e6, n_train / 1e6)

    def _collator(self, train: bool) -> Collator:
        d = self.cfg.data
        return Collator(self.tokenizer, self.plan, max_length=d.max_length, train=train, on_overflow=d.on_overflow,
                        packing=train and bool(d.get("packing", False)))

    def _setup_data(self) -> None:
        t, d = self.cfg.trainer, self.cfg.data
        store = None
        if self.cfg.features.cache_dir:
            store = open_cache(self.cfg, self.model, self.train_split.pool, self.accelerator)  # any epoch's samples
        self.train_set = ClipDataset(self.train_split.epoch(0), self.plan, describe_ratio=d.describe_ratio,
                                     seed=self.cfg.seed, features=store, visual=d.get("visual", "frames"))
        self.sampler = ResumableBatches(len(self.train_set), t.batch_size, self.cfg.seed, self.rank, self.world)
        self.loader_generator = torch.Generator()
        self.loader = torch.utils.data.DataLoader(
            self.train_set,
            batch_sampler=self.sampler,
            collate_fn=self._collator(True),
            num_workers=t.num_workers,
            generator=self.loader_generator,
            worker_init_fn=worker_init,
        )
        if self.sampler.batches_per_epoch == 0:
            raise ValueError(f"{len(self.train_set)} training samples are fewer than one global batch of "
                             f"{t.batch_size} x {self.world} process(es)")

    def _has_standardizers(self) -> bool:
        return any(
            m is not None and m.standardizer is not None for m in (self.model.video_adapter, self.model.audio_adapter)
        )

    @torch.no_grad()
    def _fit_standardizers(self) -> None:
        """Fix per-position feature means and per-dimension stds from training clips (frozen encoders).
        Every rank computes the same statistics from the same clips."""
        n = min(len(self.train_set), self.cfg.trainer.standardize_samples)
        loader = torch.utils.data.DataLoader(torch.utils.data.Subset(self.train_set, range(n)), batch_size=16,
                                             collate_fn=self._collator(True), num_workers=self.cfg.trainer.num_workers,
                                             worker_init_fn=worker_init, generator=torch.Generator().manual_seed(0))
        video, audio = [], []
        for batch in loader:
            if not batch["names"]:
                continue
            feats = self.model.encode_media(batch)
            if feats.get("video") is not None:
                video.append(feats["video"][batch["video_present"]].cpu())
            audio += [a.cpu() for a in feats.get("audio") or [] if a is not None]
        m = self.model
        if m.video_adapter is not None and m.video_adapter.standardizer is not None and video:
            v = torch.cat(video)  # [N,T,Nv,D]: statistics per token position, pooled over frames
            m.video_adapter.standardizer.fit(v.flatten(0, 1))
        if m.audio_adapter is not None and m.audio_adapter.standardizer is not None and audio:
            x, mask = pad_features(audio)
            m.audio_adapter.standardizer.fit(x, mask)
        log.info("feature statistics fixed from %d training clips", n)

    def _resume(self, folder: Path) -> None:
        self.parallel.load_optimizer(self.model, self.optimizer, folder)
        self.parallel.load_trainable(self.model, ckpt.load_trainable(folder), source=str(folder))
        ckpt.load_optimizer_scheduler(folder, scheduler=self.scheduler)
        self.state = ckpt.load_trainer_state(folder)
        ckpt.set_rng_state(ckpt.load_rng(folder, self.rank, self.world))
        log.info("resumed from %s at step %d (epoch %d, batch %d)", folder, self.state["step"], self.state["epoch"],
                 self.state["batch_in_epoch"])

    # ------------------------------------------------------------------ train
    def train(self) -> dict:
        """Steps to ``trainer.max_steps`` or to an early stop (SIGUSR1, ``stop_after_minutes``,
        ``stop_at_step``); either way ends with a checkpoint and returns ``{"step", "stopped",
        "metrics"}`` (``stopped`` None and validation metrics at the end; the reason and {} on a stop)."""
        # SIGUSR1 (SLURM: #SBATCH --signal=USR1@120): checkpoint at the next step, then exit. SIGTERM keeps
        # its default, so a launcher tearing down a failed job is never held up. The caller's handler comes back
        # afterwards (a process that trains twice, or trains and goes on, keeps its own).
        before = signal.signal(signal.SIGUSR1, self._on_signal)
        try:
            return self._train()
        finally:
            signal.signal(signal.SIGUSR1, before)

    def _train(self) -> dict:
        t = self.cfg.trainer
        batches = self._batches()
        self.bar = tqdm(total=t.max_steps, initial=self.state["step"], disable=not self.is_main, desc="train",
                        dynamic_ncols=True)
        self.meter, self.bad_steps, stopped = telemetry.Throughput(), 0, None
        self._train_mode()
        while self.state["step"] < t.max_steps and stopped is None:
            if self._train_step(self._micro_batches(batches)):
                stopped = self._after_step(self.state["step"])
        self.bar.close()
        self.save(f"step-{self.state['step']}")
        metrics = {} if stopped else self.evaluate()
        if stopped:
            if self.is_main:  # consumed: the resumed run must not stop at once
                (self.out / STOP_FILE).unlink(missing_ok=True)
            log.info("stopped at step %d (%s); resume with trainer.resume=auto", self.state["step"], stopped)
        else:
            self._log_eval(metrics)
            self.save("final")
            if self.is_main:
                (self.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        if self.is_main and self.tracker is not None:
            self.tracker.finish()
        return {"step": self.state["step"], "stopped": stopped, "metrics": metrics}

    def _micro_batches(self, batches) -> list[dict]:
        """The step's ``grad_accum`` micro-batches; clips that failed to load are counted and logged."""
        micro = []
        while len(micro) < self.cfg.trainer.grad_accum:
            b = next(batches)
            self._count_bad(b)
            if b["names"]:
                micro.append(b)
        return micro

    def _train_step(self, micro: list[dict]) -> bool:
        """Forward and backward over the micro-batches, one collective for the loss, the counts and
        the stop / non-finite flags, then the optimizer step. False when a non-finite loss (on any
        rank) skipped the step. The only other collective is the loss normaliser, which the
        backward passes need first: the step's target tokens over all ranks."""
        t, par = self.cfg.trainer, self.parallel
        total = par.sum([sum(int((b["labels"][:, 1:] != -100).sum()) for b in micro)])[0]
        loss_local = 0.0
        for i, b in enumerate(micro):
            last = i == len(micro) - 1
            with par.accumulating(self.model, last):
                loss_sum = self.model(b).loss_sum
                # DDP and DeepSpeed average gradients over ranks: x world makes it a sum over the global batch.
                par.backward(self.model, loss_sum / total * self.world, last)
            loss_local += loss_sum.item()
        late = bool(t.stop_after_minutes) and time.time() - self.started > 60 * t.stop_after_minutes
        loss_all, n, tokens, bad, stop = par.sum([loss_local, sum(len(b["names"]) for b in micro),
                                                  sum(int(b["attention_mask"].sum()) for b in micro),
                                                  float(not math.isfinite(loss_local)),
                                                  float(self._stop_requested(late))])
        if not self._apply_step(bool(bad), n, "non-finite loss",
                                f", samples {[name for b in micro for name in b['names']]}"):
            return False
        self.meter.update(int(n), int(tokens), self._step_flops(micro))
        self.step_loss, self.stop_requested = loss_all / total, bool(stop)
        return True

    def _apply_step(self, bad: bool, n: float, what: str, detail: str = "") -> bool:
        """The optimizer step over the accumulated gradients, or, after a non-finite loss on any rank, the
        step skipped, logged and counted (``trainer.max_bad_steps`` in a row abort). True when it stepped."""
        t, par = self.cfg.trainer, self.parallel
        if bad:
            self.bad_steps += 1
            why = f"{what} at step {self.state['step'] + 1} ({self.bad_steps} in a row{detail})"
            par.skip(self.model, self.optimizer, why)
            log.warning("%s; step skipped", why)
            if self.bad_steps >= t.max_bad_steps:
                raise RunError(f"{self.bad_steps} non-finite losses in a row (trainer.max_bad_steps={t.max_bad_steps})")
            return False
        self.bad_steps = 0
        self.grad_norm = par.step(self.model, self.optimizer, t.grad_clip)
        self.scheduler.step()
        self.state["step"] += 1
        self.state["samples_seen"] += int(n)
        return True

    def _step_flops(self, micro: list[dict]) -> float:
        """This rank's model FLOPs of the step (``affectgpt.model.flops``); 0 when MFU is not reported."""
        if not self.peak_tflops:
            return 0.0
        model = self.accelerator.unwrap_model(self.model)
        if self.flop_shape is None:
            self.flop_shape = flops.llm_shape(model.llm)
        return sum(flops.batch_flops(model, b, self.flop_shape) for b in micro)

    def _after_step(self, step: int) -> str | None:
        """Log the step, then save or evaluate when due; the reason to stop early, if any."""
        t = self.cfg.trainer
        lr = self.scheduler.get_last_lr()[0]
        self.state["history"].append({"step": step, "loss": self.step_loss, "lr": lr,
                                      "wall_s": round(time.time() - self.started, 3),  # since this process started
                                      **self._history_row()})
        self._report(lr)
        if self.stop_requested and step < t.max_steps:
            return "SIGUSR1, a STOP file or trainer.stop_after_minutes"
        if t.stop_at_step and t.stop_at_step <= step < t.max_steps:
            return "trainer.stop_at_step"
        if t.save_every and step % t.save_every == 0 and step < t.max_steps:
            self.save(f"step-{step}")
        if t.eval_every and step % t.eval_every == 0 and step < t.max_steps:
            self._log_eval(self.evaluate())
        return None

    def _read_answers(self, preds: list[dict]) -> list[dict]:
        """Validation rows as scored; a stage with another answer format reads its emotions here."""
        return preds

    def _history_row(self) -> dict:
        """What a stage adds to a step's history entry (and to the tracker's row)."""
        return {}

    def _batches(self):
        """Micro-batches forever, epoch after epoch, from the saved position."""
        while True:
            self.sampler.set_position(self.state["epoch"], self.state["batch_in_epoch"])
            self.train_set.set_epoch(self.state["epoch"], self.train_split.epoch(self.state["epoch"]))
            # Worker seeds depend on the epoch only, not on how many iterators came before.
            self.loader_generator.manual_seed(self.cfg.seed * 1000003 + self.state["epoch"])
            for batch in self.loader:
                self.state["batch_in_epoch"] += 1
                yield batch
            self.state["epoch"] += 1
            self.state["batch_in_epoch"] = 0

    def _count_bad(self, batch: dict) -> None:
        for name, err in batch["bad"]:
            self.state["bad_samples"] += 1
            self.last_bad = f"{name}: {err}"
            log.warning("skipped sample %s: %s", name, err)
        seen = self.state["samples_seen"] + self.state["bad_samples"]
        limit = self.cfg.data.max_bad_fraction
        if seen >= 50 and self.state["bad_samples"] / seen > limit:
            raise InputError(f"{self.state['bad_samples']} of {seen} samples failed to load "
                             f"(> data.max_bad_fraction={limit}; train.log names each), "
                             f"the last: {getattr(self, 'last_bad', '?')}")

    def _train_mode(self) -> None:
        """Adapters and LoRA in train mode; the frozen encoders stay in eval (their outputs must equal the cache's)."""
        self.model.train()
        m = self.accelerator.unwrap_model(self.model)
        for encoder in (m.vision, m.audio):
            if encoder is not None:
                encoder.eval()

    def _on_signal(self, signum, _frame) -> None:
        self.stop_signal = signum  # acted on at the next step boundary, on every rank at once

    def _stop_requested(self, late: bool) -> bool:
        """SIGUSR1 to any rank, the time limit, or a file ``STOP`` in output_dir (seen by rank 0; for
        launchers that cannot forward a signal to their workers, as scripts/slurm_train.sh)."""
        return self.stop_signal is not None or late or (self.is_main and (self.out / STOP_FILE).exists())

    def _report(self, lr: float) -> None:
        if not self.is_main:
            return
        sps, tps = self.meter.rates()
        mem = telemetry.peak_memory_mb(self.accelerator.device)
        self.bar.update(1)
        # The GRPO step counts no FLOPs (its rollouts are not a training forward): no MFU rather than 0%.
        mfu = self.meter.mfu(self.peak_tflops) if self.peak_tflops and self.meter.flops else None
        extra = {} if mfu is None else {"mfu": f"{100 * mfu:.1f}%"}
        self.bar.set_postfix(loss=f"{self.step_loss:.4f}", lr=f"{lr:.2e}", sps=f"{sps:.1f}", tps=f"{tps:.0f}",
                             mem=f"{mem:.0f}M", **extra)
        if self.state["step"] % self.cfg.trainer.log_every != 0:
            return
        if mfu is not None:
            log.info("step %d: loss %.4f, %.1f samples/s, %.0f tokens/s, %.3g model TFLOP/s, MFU %.2f%% "
                     "(peak %g TFLOP/s)", self.state["step"], self.step_loss, sps, tps, mfu * self.peak_tflops,
                     100 * mfu, self.peak_tflops)
        if self.tracker is not None:
            row = {"train/loss": self.step_loss, "train/lr": lr, "train/samples_per_s": sps, "train/tokens_per_s": tps,
                   "train/peak_memory_mb": mem}
            if mfu is not None:
                row["train/mfu"] = mfu
            if self.grad_norm is not None:
                row["train/grad_norm"] = self.grad_norm
            row.update({f"train/{k}": v for k, v in self._history_row().items()})
            self.tracker.log(row, step=self.state["step"])

    def _log_eval(self, metrics: dict) -> None:
        if not self.is_main:
            return
        f1 = (metrics.get("exact") or {}).get("f1")
        log.info("step %d validation: %s", self.state["step"], json.dumps(metrics.get("exact", {})))
        self.state["history"].append(telemetry.validation_record(self.state["step"], metrics))
        if self.tracker is not None and f1 is not None:
            self.tracker.log({"val/f1": f1}, step=self.state["step"])
        telemetry.plot_curves(self.state["history"], self.out / "curves.png")

    # ------------------------------------------------------------------ checkpoint and eval
    def save(self, name: str) -> None:
        """All ranks enter; rank 0 writes. Weights are gathered first under ZeRO-3."""
        acc, par = self.accelerator, self.parallel
        folder = self.out / "checkpoints" / name
        acc.wait_for_everyone()
        tmp = ckpt.temp_folder(folder)
        if self.is_main:
            ckpt.begin(folder)
        acc.wait_for_everyone()
        optimizer = par.save_optimizer(self.model, self.optimizer, tmp)
        trainable = par.trainable_state(self.model)
        rngs = par.gather(ckpt.rng_state())
        if self.is_main:
            model = acc.unwrap_model(self.model)
            with writing(folder):  # a full disk says so, not "unexpected pos 576 vs 534"
                ckpt.write_files(tmp, trainable, OmegaConf.to_yaml(self.cfg, resolve=True), dict(self.state), rngs,
                                 optimizer=optimizer, scheduler=self.scheduler,
                                 tokenizer=model.tokenizer if name == "final" else None)
                ckpt.commit(tmp, folder)
            if name != "final":
                ckpt.prune_checkpoints(self.out, self.cfg.trainer.keep_last)
            log.info("saved %s", folder)
        acc.wait_for_everyone()

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Scorer metrics on the validation split, generated in shards across ranks; the result on
        rank 0 ({} elsewhere). Restores every generator it touches, so evaluating changes nothing
        about training. Under ZeRO-3 every rank gets a shard of the same length, and transformers
        keeps the ranks generating in step (``synced_gpus``), so their parameter gathers pair up."""
        rng = ckpt.rng_state()
        model = self.accelerator.unwrap_model(self.model)
        model.eval()
        samples = self.val_samples[: self.cfg.eval.max_samples] if self.cfg.eval.max_samples else self.val_samples
        shard = samples[self.rank :: self.world]
        if self.parallel.zero_stage == 3 and samples:  # padding; the duplicate rows are dropped below
            shard = (shard or samples[:1]) + (shard or samples[:1])[-1:] * (-(-len(samples) // self.world) - len(shard))
        preds = predict(model, shard, task=self.eval_task, batch_size=self.cfg.eval.batch_size,
                        max_new_tokens=self.cfg.eval.max_new_tokens, progress=self.is_main,
                        visual=self.cfg.data.get("visual", "frames"), system=self.system)
        preds = self._read_answers(preds)
        self._train_mode()
        ckpt.set_rng_state(rng)
        rows = {p["name"]: p for part in self.parallel.gather(preds) for p in part}
        return telemetry.evaluate_predictions(list(rows.values()), samples) if self.is_main else {}
