"""The GRPO stage (``trainer.stage=grpo``): the supervised recipe's loop with a reinforcement step.

``GRPORecipe`` is ``TrainRecipe`` with another ``_train_step``: the same setup, data order,
Accelerate/DeepSpeed plumbing, checkpoints, exact resume (the sampling draws come from the torch
generator every checkpoint saves), telemetry and evaluation. One step, per micro-batch of B clips:

1. rollouts (``rollout``): the frozen encoders and adapters run once per clip, the prompt's prefill
   once per clip, its KV cache is repeated to the G rows of the group; then G samples per prompt
   (temperature, top-p) decode together, keeping each token's log-probability (the old policy's);
2. rewards (``affectgpt.eval.rewards``, torch-free): each term per answer, the weighted total;
   advantages = reward − the group's mean (÷ its std with ``scale_rewards``);
3. loss, token-level mean over the step's completion tokens on all ranks:
   ``−min(ρA, clip(ρ, 1−ε, 1+ε)A) + β·k3``, ρ = exp(logp − logp_old), k3 = exp(ref − logp) − (ref − logp) − 1.

The reference policy is the starting checkpoint without a second model: a frozen copy of the
trainable tensors only (LoRA, adapters, fixed statistics; ``ReferenceWeights``), copied into the
live parameters in place for one no-grad forward and copied back. Under ZeRO-1/2 every rank holds
whole parameters, so the swap works there too; ZeRO-3 partitions them and is refused.

Dropout is off in this stage (the model stays in eval mode, as TRL's ``disable_dropout``): the
policy that samples must be the one whose log-probabilities are trained.
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from omegaconf import DictConfig
from safetensors.torch import load_file, save_file

from affectgpt.core.fileio import atomic_path
from affectgpt.data.collate import ClipDataset, Collator, worker_init
from affectgpt.data.prompts import SYSTEM_PROMPT
from affectgpt.eval import rewards as rw
from affectgpt.eval.scorer import resolve_lexicon
from affectgpt.recipe.features import open_cache
from affectgpt.recipe.training import ResumableBatches, TrainRecipe
from affectgpt.runtime.decoding import _Calls

log = logging.getLogger("affectgpt.train")
REFERENCE_FILE = "grpo_reference.safetensors"  # in output_dir: the starting weights the KL term compares against
TRAINS = ("lora_adapters", "lora")


# ----------------------------------------------------------------------------- rollouts
def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Logits with everything outside the smallest set of tokens whose probability reaches top_p set to -inf."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = logits.sort(-1, descending=True)
    probs = sorted_logits.softmax(-1)
    drop = probs.cumsum(-1) - probs > top_p  # the token that crosses top_p stays
    return logits.scatter(-1, order, sorted_logits.masked_fill(drop, -math.inf))


@torch.no_grad()
def rollout(model, batch: dict, group: int, max_new_tokens: int, temperature: float = 1.0, top_p: float = 0.9,
            share_prefill: bool = True) -> dict:
    """G sampled completions per prompt of a left-padded generation batch. Returns ``ids`` and
    ``mask`` [B*G, L] (mask 1 up to and including the stop token), ``logp`` (the sampling policy's
    log-probabilities at ``temperature``, untruncated by top-p, of the masked tokens, flat) and
    timing. ``share_prefill=False`` repeats the prompt G times before the prefill (G independent
    generations: benchmarks/bench_rl.py compares). Draws from torch's global generator."""
    base = model._base()
    cache_key = _Calls(base).cache_key  # "cache" in newer transformers, "past_key_values" before
    t0 = time.perf_counter()
    prompt = model.embed(batch, model.encode_media(batch))
    attn = batch["attention_mask"].to(model.device)
    if not share_prefill:
        prompt, attn = prompt.repeat_interleave(group, 0), attn.repeat_interleave(group, 0)
    positions = (attn.cumsum(-1) - 1).clamp(min=0)
    out = base(inputs_embeds=prompt, attention_mask=attn, position_ids=positions, use_cache=True, logits_to_keep=1)
    cache, logits = out.past_key_values, out.logits[:, -1]
    if share_prefill:
        cache.batch_repeat_interleave(group)
        logits, attn = logits.repeat_interleave(group, 0), attn.repeat_interleave(group, 0)
        positions = positions.repeat_interleave(group, 0)
    t_prefill = time.perf_counter() - t0
    n = attn.shape[0]
    stop = torch.tensor(sorted(model.stop_ids), device=model.device)
    banned = sorted(set(model.token_ids.values()))  # a placeholder is never an answer (as in generate)
    nxt = positions[:, -1:] + 1
    done = torch.zeros(n, dtype=torch.bool, device=model.device)
    ids, keep, logps = [], [], []
    for step in range(max_new_tokens):
        scaled = logits.float() / temperature
        logp_all = scaled.log_softmax(-1)
        sampling = scaled.clone()
        sampling[:, banned] = -math.inf
        token = torch.multinomial(top_p_filter(sampling, top_p).softmax(-1), 1).squeeze(1)
        ids.append(torch.where(done, model.tokenizer.pad_token_id, token))
        keep.append(~done)
        logps.append(logp_all.gather(1, token.unsqueeze(1)).squeeze(1))
        done = done | torch.isin(token, stop)
        if bool(done.all()) or step == max_new_tokens - 1:
            break
        attn = torch.cat([attn, torch.ones(n, 1, dtype=attn.dtype, device=attn.device)], 1)
        out = base(input_ids=token.unsqueeze(1), attention_mask=attn, position_ids=nxt, use_cache=True,
                   **{cache_key: cache})
        logits, nxt = out.logits[:, -1], nxt + 1
    ids_t, keep_t = torch.stack(ids, 1), torch.stack(keep, 1)
    return {"ids": ids_t, "mask": keep_t, "logp": torch.stack(logps, 1)[keep_t], "prefill_s": t_prefill,
            "seconds": time.perf_counter() - t0, "tokens": int(keep_t.sum())}


def group_advantages(rewards: torch.Tensor, group: int, scale: bool = False) -> torch.Tensor:
    """Reward minus its group's mean (G consecutive rows per prompt), ÷ the group's std (+1e-4) with ``scale``."""
    r = rewards.view(-1, group)
    a = r - r.mean(1, keepdim=True)
    if scale:
        a = a / (r.std(1, keepdim=True) + 1e-4)
    return a.flatten()


def grpo_token_loss(logp: torch.Tensor, old: torch.Tensor, ref: torch.Tensor | None, adv: torch.Tensor,
                    epsilon: float, beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token clipped surrogate + β·k3 KL (flat tensors of the kept tokens; ``adv`` per token).
    Returns the loss, the KL and whether the ratio was clipped, per token."""
    ratio = torch.exp(logp - old)
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1 - epsilon, 1 + epsilon) * adv)
    clipped = ((ratio < 1 - epsilon) & (adv < 0)) | ((ratio > 1 + epsilon) & (adv > 0))
    kl = torch.zeros_like(logp) if ref is None else torch.exp(ref - logp) - (ref - logp) - 1
    return -surrogate + beta * kl, kl.detach(), clipped


# ----------------------------------------------------------------------------- the reference policy
class ReferenceWeights:
    """The starting values of the trainable parameters (nothing of the frozen base: a LoRA copy
    of a 7B is ~0.3 GB, a second model 15 GB). ``active(model)`` swaps them in for a no-grad forward."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        self.tensors = tensors

    @classmethod
    def of(cls, module) -> ReferenceWeights:
        return cls({n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad})

    def save(self, path: Path) -> None:
        with atomic_path(path) as tmp:
            save_file({k: v.contiguous().cpu() for k, v in self.tensors.items()}, str(tmp))

    @classmethod
    def load(cls, path: Path, module) -> ReferenceWeights:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: the GRPO reference weights of this run are missing; a resumed GRPO run "
                                    f"needs the file its first run wrote")
        state, params = load_file(str(path)), dict(module.named_parameters())
        want = {n for n, p in params.items() if p.requires_grad}
        if set(state) != want:
            raise RuntimeError(f"{path}: reference tensors do not match the trainable parameters: missing="
                               f"{sorted(want - set(state))[:10]} unexpected={sorted(set(state) - want)[:10]}")
        return cls({k: v.to(params[k].device, params[k].dtype) for k, v in state.items()})

    @contextmanager
    def active(self, module):
        params = dict(module.named_parameters())
        live = {n: params[n].detach().clone() for n in self.tensors}
        with torch.no_grad():
            for n, t in self.tensors.items():
                params[n].copy_(t)
        try:
            yield
        finally:
            with torch.no_grad():
                for n, t in live.items():
                    params[n].copy_(t)


# ----------------------------------------------------------------------------- the recipe
class GRPORecipe(TrainRecipe):
    """``TrainRecipe`` whose step is GRPO's (module docstring); everything else is inherited."""

    eval_task = "labels"

    def __init__(self, cfg: DictConfig):
        super().__init__(cfg)
        g = cfg.trainer.grpo
        if g.train not in TRAINS:
            raise ValueError(f"trainer.grpo.train must be one of {TRAINS}, got {g.train!r}")
        self.spec = rw.RewardSpec({k: float(v) for k, v in g.rewards.items()}, mode=g.mode)
        self.lexicon = resolve_lexicon(g.wheels)
        self.system = f"{SYSTEM_PROMPT} {rw.THINK_INSTRUCTION}" if g.mode == "think" else None

    def setup(self) -> None:
        super().setup()
        if self.parallel.zero_stage == 3:
            raise ValueError("trainer.stage=grpo swaps the reference weights into whole parameters; ZeRO-3 partitions "
                             "them: use ZeRO-2 (conf/deepspeed/zero2.json) or DDP")
        module = self.accelerator.unwrap_model(self.model)
        path = self.out / REFERENCE_FILE
        if self.state["step"] == 0:  # a fresh run: the weights it starts from (trainer.init_from's) are the reference
            self.reference = ReferenceWeights.of(module)
            if self.is_main:
                self.reference.save(path)
        else:
            self.reference = ReferenceWeights.load(path, module)

    # ------------------------------------------------------------------ data: prompts with gold labels
    def _collator(self, train: bool) -> Collator:
        d = self.cfg.data
        return Collator(self.tokenizer, self.plan, max_length=d.max_length, train=False, system=self.system)

    def _setup_data(self) -> None:
        pool = self.train_split.pool
        missing = [s.name for s in pool if not s.emotions]
        if missing:
            raise ValueError(f"trainer.stage=grpo needs gold emotions on every training sample; {len(missing)} of "
                             f"{len(pool)} have none: {missing[:10]}{' ...' if len(missing) > 10 else ''} (filter "
                             f"them out of the source, or use a labelled one: MER2025 track2_* openset CSVs, OV-MERD, "
                             f"JSONL 'emotions')")
        self.gold = {s.name: list(s.emotions) for s in pool}
        t = self.cfg.trainer
        store = None
        if self.cfg.features.cache_dir:
            store = open_cache(self.cfg, self.model, pool, self.accelerator)
        self.train_set = ClipDataset(self.train_split.epoch(0), self.plan, task="labels", seed=self.cfg.seed,
                                     features=store, visual=self.cfg.data.get("visual", "frames"))
        self.sampler = ResumableBatches(len(self.train_set), t.batch_size, self.cfg.seed, self.rank, self.world)
        self.loader_generator = torch.Generator()
        self.loader = torch.utils.data.DataLoader(self.train_set, batch_sampler=self.sampler,
                                                  collate_fn=self._collator(False), num_workers=t.num_workers,
                                                  generator=self.loader_generator, worker_init_fn=worker_init)
        if self.sampler.batches_per_epoch == 0:
            raise ValueError(f"{len(self.train_set)} training samples are fewer than one global batch of "
                             f"{t.batch_size} x {self.world} process(es)")

    def _param_groups(self) -> list[dict]:
        groups = super()._param_groups()
        if self.cfg.trainer.grpo.train == "lora":  # adapters keep their weights (and stay in every checkpoint)
            for g in groups:
                if g["name"].split("_nodecay")[0] in ("video_adapter", "audio_adapter", "fusion"):
                    g["lr"] = 0.0
        return groups

    def _train_mode(self) -> None:
        self.model.eval()  # no dropout anywhere: the sampling policy is the trained one

    # ------------------------------------------------------------------ the step
    def _train_step(self, micro: list[dict]) -> bool:
        g, par = self.cfg.trainer.grpo, self.parallel
        module = self.accelerator.unwrap_model(self.model)
        t0 = time.perf_counter()
        rolls, stats = [], {"rollout_s": 0.0, "rollout_tokens": 0, "terms": {k: [] for k in self.spec.active},
                            "reward": [], "labels": [], "length": []}
        for b in micro:
            r = rollout(module, b, g.group_size, g.max_new_tokens, g.temperature, g.top_p)
            texts = self.tokenizer.batch_decode([row[m] for row, m in zip(r["ids"], r["mask"], strict=True)],
                                                skip_special_tokens=True)
            gold = [self.gold[n] for n in b["names"] for _ in range(g.group_size)]
            scored = rw.score_answers([t.strip() for t in texts], gold, self.spec, self.lexicon)
            reward = torch.tensor(scored["total"], dtype=torch.float32)
            if g.shuffle_rewards:  # the control run: rewards no longer belong to their answers
                reward = reward[torch.randperm(len(reward))]
            r["adv"] = group_advantages(reward, g.group_size, g.scale_rewards).to(module.device)
            if g.beta:
                with torch.no_grad(), self.reference.active(module):
                    r["ref"] = module.completion_logprobs(b, r["ids"], r["mask"], g.temperature).logprobs
            rolls.append(r)
            stats["rollout_s"] += r["seconds"]
            stats["rollout_tokens"] += r["tokens"]
            stats["reward"] += reward.tolist()
            stats["labels"] += [len(set(x)) for x in scored["labels"]]
            stats["length"] += r["mask"].sum(1).tolist()
            for k, v in scored["terms"].items():
                stats["terms"][k] += v
        t1 = time.perf_counter()
        total = par.sum([sum(r["tokens"] for r in rolls)])[0]
        loss_local, kl_local, clipped_local, train_tokens = 0.0, 0.0, 0.0, 0
        for i, (b, r) in enumerate(zip(micro, rolls, strict=True)):
            last = i == len(micro) - 1
            with par.accumulating(self.model, last):
                out = self.model(b, completions=(r["ids"], r["mask"]), temperature=g.temperature)
                logp, keep = out.logprobs, out.completion_mask
                adv = r["adv"].unsqueeze(1).expand_as(keep)[keep]
                loss, kl, clipped = grpo_token_loss(logp, r["logp"], r.get("ref"), adv, g.epsilon, g.beta)
                loss_sum = loss.sum()
                par.backward(self.model, loss_sum / total * self.world, last)
            loss_local += loss_sum.item()
            kl_local += float(kl.sum())
            clipped_local += float(clipped.sum())
            train_tokens += int(b["attention_mask"].sum()) * g.group_size + r["tokens"]
        t2 = time.perf_counter()
        return self._finish_step(micro, rolls, stats, total, loss_local, kl_local, clipped_local, train_tokens,
                                 (t0, t1, t2))

    def _finish_step(self, micro, rolls, stats, total, loss_local, kl_local, clipped_local, train_tokens,
                     times) -> bool:
        """One collective for the sums and flags, the optimizer step, then the step's statistics."""
        t, par = self.cfg.trainer, self.parallel
        late = bool(t.stop_after_minutes) and time.time() - self.started > 60 * t.stop_after_minutes
        loss_all, kl_all, clip_all, n, bad, stop = par.sum([
            loss_local, kl_local, clipped_local, sum(len(b["names"]) for b in micro),
            float(not math.isfinite(loss_local)), float(self._stop_requested(late))])
        if not self._apply_step(bool(bad), n, "non-finite GRPO loss"):
            return False
        t0, t1, t2 = times
        parts = par.gather({k: stats[k] for k in ("reward", "labels", "length", "terms", "rollout_tokens")} |
                           {"rollout_s": stats["rollout_s"], "train_tokens": train_tokens, "train_s": t2 - t1})
        self.meter.update(int(n), sum(p["train_tokens"] for p in parts))
        self.step_loss, self.stop_requested = loss_all / total, bool(stop)
        self.step_extras = step_statistics(parts, kl_all / total, clip_all / total, time.perf_counter() - t0)
        return True

    def _history_row(self) -> dict:
        return dict(self.step_extras)

    def _read_answers(self, preds: list[dict]) -> list[dict]:
        if self.spec.mode == "think":  # the labels are the <answer> part's
            return [p | {"emotions": rw.answer_labels(p["description"], "think")} if "description" in p else p
                    for p in preds]
        return preds


def _mean_std(xs: list[float]) -> tuple[float, float]:
    t = torch.tensor(xs, dtype=torch.float64)
    return float(t.mean()), float(t.std(unbiased=False)) if len(xs) > 1 else 0.0


def step_statistics(parts: list[dict], kl: float, clip_fraction: float, step_s: float) -> dict:
    """The logged row of one step from every rank's lists: reward (total and per term) mean and std,
    KL and clip fraction (token means), answer length in tokens, label-list length, throughputs."""
    cat = {k: [x for p in parts for x in p[k]] for k in ("reward", "labels", "length")}
    row = {}
    row["reward"], row["reward_std"] = _mean_std(cat["reward"])
    for k in parts[0]["terms"]:
        row[f"reward_{k}"], row[f"reward_{k}_std"] = _mean_std([x for p in parts for x in p["terms"][k]])
    # ranks work in parallel: throughput = all ranks' tokens over the slowest rank's seconds
    rollout_s, train_s = (max(1e-9, max(p[k] for p in parts)) for k in ("rollout_s", "train_s"))
    row.update(kl=kl, clip_fraction=clip_fraction, answer_tokens=_mean_std(cat["length"])[0],
               label_count=_mean_std(cat["labels"])[0],
               rollout_tokens_per_s=sum(p["rollout_tokens"] for p in parts) / rollout_s,
               train_tokens_per_s=sum(p["train_tokens"] for p in parts) / train_s,
               rollout_share=rollout_s / max(1e-9, step_s))
    return {k: round(v, 6) for k, v in row.items()}
