"""The training recipe: setup (data, model, optimizer), a visible loop, checkpoints, evaluation.

One class in the spirit of torchtune's recipes. Accelerate handles devices, mixed precision,
DDP and DeepSpeed; everything else is plain PyTorch you can read top to bottom.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from . import checkpoint as ckpt
from .data.collate import ClipDataset, Collator, worker_init
from .data.manifest import Sample, read_manifest

log = logging.getLogger("affectgpt.train")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def load_split(data_cfg: DictConfig, split: str) -> list[Sample]:
    """Read a split's manifest; the synthetic dataset is generated on first use."""
    if data_cfg.kind == "synthetic":
        from .data.synthetic import ensure_dataset

        ensure_dataset(Path(data_cfg.root), seed=data_cfg.seed, n_train=data_cfg.n_train, n_val=data_cfg.n_val,
                       n_test=data_cfg.n_test)
    manifest = data_cfg.get(f"{split}_manifest")
    if not manifest:
        raise ValueError(f"data.{split}_manifest is not set")
    return read_manifest(manifest)


class ResumableBatches(torch.utils.data.Sampler):
    """Index batches of one epoch: a permutation fixed by (seed, epoch), starting at a batch offset
    so that a resumed run sees exactly the batches the interrupted one had left."""

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.epoch, self.start = 0, 0

    def set_position(self, epoch: int, start_batch: int) -> None:
        self.epoch, self.start = epoch, start_batch

    def __len__(self) -> int:
        return self.n // self.batch_size - self.start

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        for b in range(self.start, self.n // self.batch_size):
            yield perm[b * self.batch_size : (b + 1) * self.batch_size]


def lr_lambda(warmup: int, total: int, min_ratio: float):
    """Linear warmup then cosine decay to min_ratio × base lr."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


def param_groups(model, tcfg: DictConfig) -> list[dict]:
    """Adapters and LoRA get their own learning rates; no weight decay on biases, norms, 1-d params."""
    groups: dict[tuple[str, bool], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        kind = "llm" if name.startswith("llm.") else "adapter"
        decay = p.ndim >= 2 and "norm" not in name
        groups.setdefault((kind, decay), []).append(p)
    lrs = {"adapter": tcfg.lr_adapter or tcfg.lr, "llm": tcfg.lr_lora or tcfg.lr}
    return [{"params": ps, "lr": lrs[k], "weight_decay": tcfg.weight_decay if d else 0.0, "name": f"{k}{'' if d else '_nodecay'}"}
            for (k, d), ps in sorted(groups.items())]


class TrainRecipe:
    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.out = Path(cfg.output_dir)

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        from accelerate import Accelerator

        t = self.cfg.trainer
        self.accelerator = Accelerator(mixed_precision=t.mixed_precision, cpu=self.cfg.device == "cpu",
                                       gradient_accumulation_steps=1)
        seed_everything(self.cfg.seed)
        self.is_main = self.accelerator.is_main_process
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.yaml").write_text(OmegaConf.to_yaml(self.cfg, resolve=True))
        self.train_samples = load_split(self.cfg.data, "train")
        self.val_samples = load_split(self.cfg.data, "val")
        self._setup_model()
        self._setup_data()
        self._setup_optimizer()
        self.state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "samples_seen": 0, "bad_samples": 0, "history": []}
        resume = ckpt.resolve_resume(t.resume, self.out)
        if resume is not None:
            self._resume(resume)
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(self.model, self.optimizer, self.scheduler)
        self.tracker = self._setup_tracker()

    def _setup_model(self) -> None:
        from .model.build import build_model

        torch.manual_seed(self.cfg.seed)  # adapter and LoRA init
        self.model = build_model(self.cfg.model, device=self.accelerator.device)
        self.plan = self.model.token_plan()
        self.tokenizer = self.model.tokenizer
        n_train = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        n_all = sum(p.numel() for p in self.model.parameters())
        log.info("model: %.2fM parameters, %.3fM trainable", n_all / 1e6, n_train / 1e6)

    def _collator(self, train: bool) -> Collator:
        d = self.cfg.data
        return Collator(self.tokenizer, self.plan, max_length=d.max_length, train=train, on_overflow=d.on_overflow)

    def _setup_data(self) -> None:
        t, d = self.cfg.trainer, self.cfg.data
        self.train_set = ClipDataset(self.train_samples, self.plan, describe_ratio=d.describe_ratio, seed=self.cfg.seed)
        self.sampler = ResumableBatches(len(self.train_set), t.batch_size, self.cfg.seed)
        g = torch.Generator().manual_seed(self.cfg.seed)
        self.loader = torch.utils.data.DataLoader(self.train_set, batch_sampler=self.sampler, collate_fn=self._collator(True),
                                                  num_workers=t.num_workers, generator=g, worker_init_fn=worker_init)
        if len(self.sampler) == 0:
            raise ValueError(f"{len(self.train_set)} training samples are fewer than one batch of {t.batch_size}")

    def _setup_optimizer(self) -> None:
        t = self.cfg.trainer
        fused = torch.cuda.is_available() and self.cfg.device != "cpu"
        self.optimizer = torch.optim.AdamW(param_groups(self.model, t), betas=(0.9, 0.999), eps=1e-8,
                                           **({"fused": True} if fused else {}))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(t.warmup_steps, t.max_steps, t.min_lr_ratio))
        if any(m is not None and m.standardizer is not None for m in (self.model.video_adapter, self.model.audio_adapter)):
            self._fit_standardizers()

    @torch.no_grad()
    def _fit_standardizers(self) -> None:
        """Fix per-position feature means and per-dimension stds from training clips (frozen encoders)."""
        n = min(len(self.train_set), self.cfg.trainer.standardize_samples)
        loader = torch.utils.data.DataLoader(torch.utils.data.Subset(self.train_set, range(n)), batch_size=16,
                                             collate_fn=self._collator(True), num_workers=self.cfg.trainer.num_workers,
                                             worker_init_fn=worker_init)
        video, audio = [], []
        for batch in loader:
            feats = self.model.encode_media(batch)
            if feats.get("video") is not None:
                video.append(feats["video"][batch["video_present"]].cpu())
            audio += [a.cpu() for a in feats.get("audio") or [] if a is not None]
        m = self.model
        if m.video_adapter is not None and m.video_adapter.standardizer is not None and video:
            v = torch.cat(video)  # [N,T,Nv,D]: statistics per token position, pooled over frames
            m.video_adapter.standardizer.fit(v.flatten(0, 1))
        if m.audio_adapter is not None and m.audio_adapter.standardizer is not None and audio:
            from .model.adapters import _pad

            x, mask = _pad(audio)
            m.audio_adapter.standardizer.fit(x, mask)
        log.info("feature statistics fixed from %d training clips", n)

    def _setup_tracker(self):
        w = self.cfg.wandb
        if not self.is_main or w.mode == "disabled":
            return None
        import os

        import wandb

        mode = w.mode or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
        return wandb.init(project=w.project, name=w.name, mode=mode, dir=str(self.out),
                          config=OmegaConf.to_container(self.cfg, resolve=True))

    def _resume(self, folder: Path) -> None:
        self.model.load_trainable_state_dict(ckpt.load_trainable(folder), source=str(folder))
        self.state = ckpt.load_training_state(folder, self.optimizer, self.scheduler)
        log.info("resumed from %s at step %d", folder, self.state["step"])

    # ------------------------------------------------------------------ train
    def _batches(self):
        """Micro-batches forever, epoch after epoch, from the saved position."""
        while True:
            self.sampler.set_position(self.state["epoch"], self.state["batch_in_epoch"])
            self.train_set.set_epoch(self.state["epoch"])
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

    def train(self) -> dict:
        t = self.cfg.trainer
        from tqdm import tqdm

        batches = self._batches()
        bar = tqdm(total=t.max_steps, initial=self.state["step"], disable=not self.is_main, desc="train", dynamic_ncols=True)
        bad_steps, t0, n_samples, n_tokens = 0, time.perf_counter(), 0, 0
        self.model.train()
        while self.state["step"] < t.max_steps:
            micro = []
            while len(micro) < t.grad_accum:
                b = next(batches)
                self._count_bad(b)
                if b["names"]:
                    micro.append(b)
            n_tok = sum(int((b["labels"][:, 1:] != -100).sum()) for b in micro)
            total = self.accelerator.reduce(torch.tensor(n_tok, device=self.accelerator.device), "sum").item()
            loss_total = 0.0
            for b in micro:
                loss_sum, _ = self.model(b)
                loss = loss_sum / total * self.accelerator.num_processes  # DDP averages gradients over ranks
                self.accelerator.backward(loss)
                loss_total += loss_sum.item() / total * self.accelerator.num_processes
            loss_value = self.accelerator.reduce(torch.tensor(loss_total, device=self.accelerator.device), "mean").item()
            if not math.isfinite(loss_value):
                bad_steps += 1
                self.optimizer.zero_grad(set_to_none=True)
                log.warning("non-finite loss at step %d (%d in a row); step skipped", self.state["step"], bad_steps)
                if bad_steps >= t.max_bad_steps:
                    raise RuntimeError(f"{bad_steps} non-finite losses in a row (trainer.max_bad_steps={t.max_bad_steps})")
                continue
            bad_steps = 0
            if t.grad_clip:
                self.accelerator.clip_grad_norm_(self.model.parameters(), t.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.state["step"] += 1
            n = sum(len(b["names"]) for b in micro)
            self.state["samples_seen"] += n
            n_samples, n_tokens = n_samples + n, n_tokens + sum(int(b["attention_mask"].sum()) for b in micro)
            lr = self.scheduler.get_last_lr()[0]
            self.state["history"].append({"step": self.state["step"], "loss": round(loss_value, 6), "lr": lr})
            if self.is_main:
                dt = time.perf_counter() - t0
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}", sps=f"{n_samples / dt:.1f}", tps=f"{n_tokens / dt:.0f}")
                if self.tracker is not None and self.state["step"] % t.log_every == 0:
                    self.tracker.log({"train/loss": loss_value, "train/lr": lr, "train/samples_per_s": n_samples / dt,
                                      "train/tokens_per_s": n_tokens / dt}, step=self.state["step"])
            if t.save_every and self.state["step"] % t.save_every == 0 and self.state["step"] < t.max_steps:
                self.save(f"step-{self.state['step']}")
            if t.eval_every and self.state["step"] % t.eval_every == 0 and self.state["step"] < t.max_steps:
                self._log_eval(self.evaluate())
        bar.close()
        self.save(f"step-{self.state['step']}")
        self.save("final")
        metrics = self.evaluate()
        self._log_eval(metrics)
        if self.is_main:
            (self.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
            if self.tracker is not None:
                self.tracker.finish()
        return metrics

    def _log_eval(self, metrics: dict) -> None:
        if self.is_main:
            log.info("step %d validation: %s", self.state["step"], json.dumps(metrics.get("exact", {})))
            self.state["history"].append({"step": self.state["step"], "val_f1": metrics.get("exact", {}).get("f1")})
            if self.tracker is not None:
                self.tracker.log({"val/f1": metrics.get("exact", {}).get("f1")}, step=self.state["step"])

    # ------------------------------------------------------------------ checkpoint and eval
    def save(self, name: str) -> None:
        self.accelerator.wait_for_everyone()
        model = self.accelerator.unwrap_model(self.model)
        if self.is_main:
            folder = ckpt.save_checkpoint(
                self.out / "checkpoints" / name, model.trainable_state_dict(), OmegaConf.to_yaml(self.cfg, resolve=True),
                dict(self.state), self.optimizer, self.scheduler, tokenizer=model.tokenizer if name == "final" else None,
            )
            if name != "final":
                ckpt.prune_checkpoints(self.out, self.cfg.trainer.keep_last)
            log.info("saved %s", folder)
        self.accelerator.wait_for_everyone()

    @torch.no_grad()
    def evaluate(self) -> dict:
        from .inference import predict

        model = self.accelerator.unwrap_model(self.model)
        model.eval()
        samples = self.val_samples[: self.cfg.eval.max_samples] if self.cfg.eval.max_samples else self.val_samples
        preds = predict(model, samples, task="describe", batch_size=self.cfg.eval.batch_size,
                        max_new_tokens=self.cfg.eval.max_new_tokens, progress=self.is_main)
        model.train()
        return evaluate_predictions(preds, samples)


def label_prf(pred: list[list[str]], gold: list[list[str]]) -> dict:
    """Exact-match label precision/recall/F1, averaged over samples (F from the averaged P and R)."""
    ps, rs = [], []
    for p, g in zip(pred, gold):
        p, g = {x.lower() for x in p}, {x.lower() for x in g}
        hit = len(p & g)
        ps.append(hit / len(p) if p else 0.0)
        rs.append(hit / len(g) if g else 0.0)
    P, R = (float(np.mean(ps)) if ps else 0.0), (float(np.mean(rs)) if rs else 0.0)
    return {"precision": P, "recall": R, "f1": 2 * P * R / (P + R) if P + R else 0.0, "n": len(ps)}


def evaluate_predictions(preds: list[dict], samples: list[Sample]) -> dict:
    """metrics.json: exact-match label P/R/F1 plus the built-in scorer's report."""
    from . import eval as scorer

    by_name = {p["name"]: p for p in preds}
    gold = [{"name": s.name, "emotions": list(s.emotions or []), "description": s.description} for s in samples]
    exact = label_prf([by_name.get(s.name, {}).get("emotions") or [] for s in samples], [g["emotions"] for g in gold])
    ok = [p for p in preds if not p.get("error")]
    return {"exact": exact, "scorer": scorer.score(ok, gold), "n_errors": len(preds) - len(ok)}
