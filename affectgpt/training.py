"""The training recipe: setup (data, model, optimizer), a visible loop, checkpoints, evaluation.

One class in the spirit of torchtune's recipes. Accelerate handles devices, mixed precision,
DDP and DeepSpeed; everything else is plain PyTorch you can read top to bottom.

Exactness: the data order is a pure function of (seed, epoch, position), every generator (Python,
NumPy, torch, per rank) is saved in each checkpoint, and evaluation restores the generators it
touches; so N steps + resume to 2N gives the same losses and weights as 2N steps.
"""

from __future__ import annotations

import json
import logging
import math
import random
import signal
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from . import checkpoint as ckpt
from . import telemetry
from .distributed import gather_objects, make_accelerator, make_optimizer, zero_stage
from .data.collate import ClipDataset, Collator, worker_init
from .data.splits import load_split
from .model.adapters import pad_features

log = logging.getLogger("affectgpt.train")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


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
    """Linear warmup then cosine decay to min_ratio × base lr."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


def param_groups(model, tcfg: DictConfig) -> list[dict]:
    """Adapters, LoRA and fully trained LLM modules get their own learning rates; no weight decay on
    biases, norms, 1-d params."""
    groups: dict[tuple[str, bool], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        kind = ("llm_extra" if "modules_to_save" in name else "llm") if name.startswith("llm.") else "adapter"
        decay = p.ndim >= 2 and "norm" not in name
        groups.setdefault((kind, decay), []).append(p)
    lrs = {"adapter": tcfg.lr_adapter or tcfg.lr, "llm": tcfg.lr_lora or tcfg.lr,
           "llm_extra": tcfg.get("lr_llm_extra") or tcfg.lr_lora or tcfg.lr}
    return [{"params": ps, "lr": lrs[k], "weight_decay": tcfg.weight_decay if d else 0.0, "name": f"{k}{'' if d else '_nodecay'}"}
            for (k, d), ps in sorted(groups.items())]


class TrainRecipe:
    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.out = Path(cfg.output_dir)
        self.stop_signal: int | None = None
        self.started = time.time()

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        t = self.cfg.trainer
        self.accelerator, self.deepspeed = make_accelerator(self.cfg)
        self.rank, self.world = self.accelerator.process_index, self.accelerator.num_processes
        self.is_main = self.accelerator.is_main_process
        seed_everything(self.cfg.seed)  # identical initialisation on every rank
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.yaml").write_text(OmegaConf.to_yaml(self.cfg, resolve=True))
            for p in ckpt.remove_partial(self.out):
                log.warning("removed the incomplete checkpoint %s (a killed run's)", p)
        with self.accelerator.main_process_first():  # the synthetic data and tiny weights are written once
            self.train_samples = load_split(self.cfg.data, "train")
            self.val_samples = load_split(self.cfg.data, "val")
            self._setup_model()
        self._setup_data()
        self.state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "samples_seen": 0, "bad_samples": 0, "history": []}
        resume = ckpt.resolve_resume(t.resume, self.out)
        if resume is None and self._has_standardizers():
            self._fit_standardizers()  # a resumed run loads the fitted statistics instead
        self.optimizer = make_optimizer(param_groups(self.model, t), t, self.accelerator, self.cfg.device)
        self.model, self.optimizer = self.accelerator.prepare(self.model, self.optimizer)
        # Not prepared: Accelerate would step it once per process per step.
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(t.warmup_steps, t.max_steps, t.min_lr_ratio))
        seed_everything(self.cfg.seed + 7919 * self.rank)  # dropout differs across ranks, not across restarts
        if resume is not None:
            self._resume(resume)
        self.tracker = telemetry.init_wandb(self.cfg.wandb, self.out, OmegaConf.to_container(self.cfg, resolve=True)) \
            if self.is_main else None

    def _setup_model(self) -> None:
        from .model.build import build_model

        plain = OmegaConf.to_container(self.cfg.model, resolve=True)
        if plain.get("tiny_assets"):  # written on first use with their own seeds: keep that out of the adapters' init
            from .model.tiny import ensure_tiny_assets

            ensure_tiny_assets(plain["tiny_assets"], int(plain.get("tiny_seed", 1234)), plain.get("tiny_tokenizer", "bpe"),
                               plain.get("tiny_corpus"))
        torch.manual_seed(self.cfg.seed)  # adapter and LoRA init
        self.model = build_model(self.cfg.model, device=self.accelerator.device)
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
            from .features import open_cache

            store = open_cache(self.cfg, self.model, self.train_samples, self.accelerator)
        self.train_set = ClipDataset(self.train_samples, self.plan, describe_ratio=d.describe_ratio, seed=self.cfg.seed,
                                     features=store, visual=d.get("visual", "frames"))
        self.sampler = ResumableBatches(len(self.train_set), t.batch_size, self.cfg.seed, self.rank, self.world)
        self.loader_generator = torch.Generator()
        self.loader = torch.utils.data.DataLoader(self.train_set, batch_sampler=self.sampler, collate_fn=self._collator(True),
                                                  num_workers=t.num_workers, generator=self.loader_generator,
                                                  worker_init_fn=worker_init)
        if self.sampler.batches_per_epoch == 0:
            raise ValueError(f"{len(self.train_set)} training samples are fewer than one global batch of "
                             f"{t.batch_size} x {self.world} process(es)")

    def _has_standardizers(self) -> bool:
        return any(m is not None and m.standardizer is not None for m in (self.model.video_adapter, self.model.audio_adapter))

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
        model = self.accelerator.unwrap_model(self.model)
        if self.deepspeed:
            ckpt.load_deepspeed_state(self.model, folder)
        else:
            ckpt.load_optimizer_scheduler(folder, self.optimizer)
        model.load_trainable_state_dict(ckpt.load_trainable(folder), source=str(folder))
        ckpt.load_optimizer_scheduler(folder, scheduler=self.scheduler)
        self.state = ckpt.load_trainer_state(folder)
        ckpt.set_rng_state(ckpt.load_rng(folder, self.rank, self.world))
        log.info("resumed from %s at step %d (epoch %d, batch %d)", folder, self.state["step"], self.state["epoch"],
                 self.state["batch_in_epoch"])

    # ------------------------------------------------------------------ train
    def _batches(self):
        """Micro-batches forever, epoch after epoch, from the saved position."""
        while True:
            self.sampler.set_position(self.state["epoch"], self.state["batch_in_epoch"])
            self.train_set.set_epoch(self.state["epoch"])
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
            log.warning("skipped sample %s: %s", name, err)
        seen = self.state["samples_seen"] + self.state["bad_samples"]
        limit = self.cfg.data.max_bad_fraction
        if seen >= 50 and self.state["bad_samples"] / seen > limit:
            raise RuntimeError(f"{self.state['bad_samples']} of {seen} samples failed to load "
                               f"(> data.max_bad_fraction={limit}); see the warnings above for names and causes")

    def _sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over ranks (one collective)."""
        t = torch.tensor(values, dtype=torch.float64, device=self.accelerator.device)
        return self.accelerator.reduce(t, "sum").tolist() if self.world > 1 else t.tolist()

    def _backward(self, loss: torch.Tensor, last: bool) -> None:
        if self.deepspeed:  # DeepSpeed steps inside its engine at the accumulation boundary
            self.model.set_gradient_accumulation_boundary(last)
            self.model.backward(loss, scale_wrt_gas=False)  # already normalised by the step's target tokens
            if last:
                self.model.step()
        else:
            self.accelerator.backward(loss)

    def _train_mode(self) -> None:
        """Adapters and LoRA in train mode; the frozen encoders stay in eval (their outputs must equal the cache's)."""
        self.model.train()
        m = self.accelerator.unwrap_model(self.model)
        for encoder in (m.vision, m.audio):
            if encoder is not None:
                encoder.eval()

    def _on_signal(self, signum, _frame) -> None:
        self.stop_signal = signum  # acted on at the next step boundary, on every rank at once

    def _train_step(self, micro: list[dict]) -> dict | None:
        """One optimizer step over the micro-batches (gradient accumulation): the loss is summed
        over target tokens and divided by the step's target tokens on all ranks. Returns this
        rank's summed loss, the global target count and the gradient norm; None when a loss was
        not finite (gradients dropped, no step taken)."""
        t = self.cfg.trainer
        n_tok = sum(int((b["labels"][:, 1:] != -100).sum()) for b in micro)
        total = self._sum([n_tok])[0]  # target tokens of the whole step, all ranks
        loss_local, finite = 0.0, True
        for i, b in enumerate(micro):
            last = i == len(micro) - 1
            with nullcontext() if last or self.deepspeed else self.accelerator.no_sync(self.model):
                loss_sum, _ = self.model(b)
                finite = self._sum([0.0 if math.isfinite(loss_sum.item()) else 1.0])[0] == 0
                if not finite:
                    if self.deepspeed and i > 0:
                        raise RuntimeError(f"non-finite loss in micro-batch {i} of step {self.state['step'] + 1} "
                                           f"(samples {b['names']}); under DeepSpeed a partly accumulated step "
                                           f"cannot be skipped")
                    if not self.deepspeed:
                        self.accelerator.backward(loss_sum * 0.0)  # completes DDP's reduction; gradients dropped below
                    break
                # DDP and DeepSpeed average gradients over ranks: × world makes it a sum over the global batch.
                self._backward(loss_sum / total * self.world, last)
            loss_local += loss_sum.item()
        if not finite:
            self.optimizer.zero_grad(set_to_none=True)
            return None
        grad_norm = None
        if t.grad_clip and not self.deepspeed:  # DeepSpeed clips inside its step (gradient_clipping)
            grad_norm = float(self.accelerator.clip_grad_norm_(self.model.parameters(), t.grad_clip))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state["step"] += 1
        return {"loss_sum": loss_local, "target_tokens": total, "grad_norm": grad_norm}

    def train(self) -> dict:
        t = self.cfg.trainer
        from tqdm import tqdm

        # SIGUSR1 (SLURM: #SBATCH --signal=USR1@120): checkpoint at the next step, then exit. SIGTERM keeps
        # its default, so a launcher tearing down a failed job is never held up.
        signal.signal(signal.SIGUSR1, self._on_signal)
        batches = self._batches()
        bar = tqdm(total=t.max_steps, initial=self.state["step"], disable=not self.is_main, desc="train", dynamic_ncols=True)
        meter, bad_steps = telemetry.Throughput(), 0
        self._train_mode()
        while self.state["step"] < t.max_steps:
            micro = []
            while len(micro) < t.grad_accum:
                b = next(batches)
                self._count_bad(b)
                if b["names"]:
                    micro.append(b)
            done = self._train_step(micro)
            if done is None:
                bad_steps += 1
                log.warning("non-finite loss at step %d (%d in a row, samples %s); step skipped",
                            self.state["step"] + 1, bad_steps, [n for b in micro for n in b["names"]])
                if bad_steps >= t.max_bad_steps:
                    raise RuntimeError(f"{bad_steps} non-finite losses in a row (trainer.max_bad_steps={t.max_bad_steps})")
                continue
            bad_steps = 0
            loss_local, total, grad_norm = done["loss_sum"], done["target_tokens"], done["grad_norm"]
            n_local = sum(len(b["names"]) for b in micro)
            tok_local = sum(int(b["attention_mask"].sum()) for b in micro)
            late = bool(t.stop_after_minutes) and time.time() - self.started > 60 * t.stop_after_minutes
            loss_all, n, tokens, stop = self._sum([loss_local, n_local, tok_local, float(self.stop_signal is not None or late)])
            loss_value = loss_all / total
            self.state["samples_seen"] += int(n)
            meter.update(int(n), int(tokens))
            lr = self.scheduler.get_last_lr()[0]
            self.state["history"].append({"step": self.state["step"], "loss": loss_value, "lr": lr,
                                          "wall_s": round(time.time() - self.started, 3)})  # since this process started
            self._report(bar, meter, loss_value, lr, grad_norm)
            step = self.state["step"]
            if stop or (t.stop_at_step and step >= t.stop_at_step and step < t.max_steps):
                self.save(f"step-{step}")
                log.info("stopped at step %d (%s); resume with trainer.resume=auto", step,
                         "signal or trainer.stop_after_minutes" if stop else "trainer.stop_at_step")
                bar.close()
                return {}
            if t.save_every and step % t.save_every == 0 and step < t.max_steps:
                self.save(f"step-{step}")
            if t.eval_every and step % t.eval_every == 0 and step < t.max_steps:
                self._log_eval(self.evaluate())
        bar.close()
        self.save(f"step-{self.state['step']}")
        metrics = self.evaluate()
        self._log_eval(metrics)
        self.save("final")
        if self.is_main:
            (self.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
            if self.tracker is not None:
                self.tracker.finish()
        return metrics

    def _report(self, bar, meter, loss: float, lr: float, grad_norm: float | None) -> None:
        if not self.is_main:
            return
        sps, tps = meter.rates()
        mem = telemetry.peak_memory_mb(self.accelerator.device)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", sps=f"{sps:.1f}", tps=f"{tps:.0f}", mem=f"{mem:.0f}M")
        if self.tracker is not None and self.state["step"] % self.cfg.trainer.log_every == 0:
            row = {"train/loss": loss, "train/lr": lr, "train/samples_per_s": sps, "train/tokens_per_s": tps,
                   "train/peak_memory_mb": mem}
            if grad_norm is not None:
                row["train/grad_norm"] = grad_norm
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
        acc = self.accelerator
        folder = self.out / "checkpoints" / name
        acc.wait_for_everyone()
        tmp = ckpt.temp_folder(folder)
        if self.is_main:
            ckpt.begin(folder)
        acc.wait_for_everyone()
        if self.deepspeed:
            ckpt.save_deepspeed_state(self.model, tmp)
        trainable = ckpt.gather_trainable(self.model, acc, self.deepspeed)
        rngs = gather_objects(acc, ckpt.rng_state())
        if self.is_main:
            model = acc.unwrap_model(self.model)
            ckpt.write_files(tmp, trainable, OmegaConf.to_yaml(self.cfg, resolve=True), dict(self.state), rngs,
                             optimizer=None if self.deepspeed else self.optimizer, scheduler=self.scheduler,
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
        about training."""
        from .inference import predict

        if self.deepspeed and zero_stage(self.accelerator) == 3:
            # Ranks generating different lengths would wait on each other's parameter gathers, and
            # transformers would partition the scorer's own models too.
            log.warning("ZeRO-3: no in-training evaluation; score the saved checkpoint with infer.py (score=true)")
            return {"exact": None, "skipped": "ZeRO-3"}
        rng = ckpt.rng_state()
        model = self.accelerator.unwrap_model(self.model)
        model.eval()
        samples = self.val_samples[: self.cfg.eval.max_samples] if self.cfg.eval.max_samples else self.val_samples
        preds = predict(model, samples[self.rank :: self.world], task="describe", batch_size=self.cfg.eval.batch_size,
                        max_new_tokens=self.cfg.eval.max_new_tokens, progress=self.is_main,
                        visual=self.cfg.data.get("visual", "frames"))
        self._train_mode()
        ckpt.set_rng_state(rng)
        preds = [p for part in gather_objects(self.accelerator, preds) for p in part]
        return telemetry.evaluate_predictions(preds, samples) if self.is_main else {}
