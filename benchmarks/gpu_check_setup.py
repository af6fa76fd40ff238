"""Models, synthetic batches, timing and the shared context of the GPU check rows."""

from __future__ import annotations

import contextlib
import gc
import json
import random
import time
from pathlib import Path

import torch
from gpu_check_rows import Result

from affectgpt.core.plan import SAMPLE_RATE
from affectgpt.model.flops import batch_flops, llm_shape, peak_tflops
from affectgpt.model.llm import set_gradient_checkpointing

ROOT = Path(__file__).resolve().parents[1]
CONF_MODEL = ROOT / "conf" / "model"

GIB = 1024**3

DRY_RUN_PEAK_TFLOPS = 1.0  # nominal, so the dry run's MFU column is a number

WORDS = ("she", "looks", "down", "and", "her", "voice", "trembles", "while", "the", "man", "frowns", "smiles",
         "speaks", "quickly", "softly", "angry", "calm", "tone", "rises", "eyes", "widen", "brows", "pause",
         "because", "seems", "worried", "laughs", "sighs", "nods", "tense", "relaxed", "sad", "happy")


def model_config(role: str, dry_run: bool, work: Path) -> dict:
    """The plain config dict of a shipped model config with random weights; the dry run uses the
    tiny config for every role (its tokenizer trained on a small text corpus written to work)."""
    from omegaconf import OmegaConf

    from affectgpt.model.config import to_plain

    base_role, _, kernels = role.partition("-")
    name = "tiny" if dry_run else {"7b": "affectgpt-7b", "mid": "affectgpt-mid"}[base_role]
    cfg = OmegaConf.load(CONF_MODEL / f"{name}.yaml")
    if name == "tiny":
        corpus = work / "train.jsonl"
        if not corpus.is_file():
            work.mkdir(parents=True, exist_ok=True)
            rng = random.Random(0)
            with corpus.open("w") as f:
                for i in range(40):
                    text = " ".join(rng.choice(WORDS) for _ in range(20))
                    f.write(json.dumps({"name": f"s{i}", "video": f"s{i}.mp4", "subtitle": text[:60],
                                        "description": text, "emotions": ["happy"]}) + "\n")
        cfg = OmegaConf.create({"model": cfg, "data": {"root": str(work), "train_manifest": str(corpus)}}).model
    plain = to_plain(cfg)
    plain["init"] = "random"
    plain["llm"]["kernels"] = kernels or "none"  # role "7b-liger": the 7B with model.llm.kernels=liger
    return plain


def build(role: str, dry_run: bool, work: Path, device: torch.device):
    from affectgpt.model.build import build_model

    torch.manual_seed(0)
    return build_model(model_config(role, dry_run, work), device=str(device), weights="random")


def make_items(model, n: int, seq: int, audio_seconds: float, seed: int, train: bool = True) -> list[dict]:
    """Synthetic clips: random frames in 0..1 at the encoder's size, random audio, a short
    subtitle and (training) a random target longer than ``seq`` tokens (the collator cuts it)."""
    g = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    plan = model.token_plan()
    items = []
    for i in range(n):
        item = {"name": f"clip{i}", "subtitle": " ".join(rng.choice(WORDS) for _ in range(12)), "task": "describe",
                "error": None, "frames": None, "audio": None}
        if plan.has_vision:
            item["frames"] = torch.rand(plan.frames, 3, *plan.image_size, generator=g)
        if plan.has_audio:
            item["audio"] = torch.randn(int(audio_seconds * 16000), generator=g) * 0.1
        if train:
            item["target"] = " ".join(rng.choice(WORDS) for _ in range(seq))
        items.append(item)
    return items


def make_batch(model, items: list[dict], seq: int, device: torch.device, train: bool = True) -> dict:
    """Collated batch on ``device``; training sequences are exactly ``seq`` tokens long."""
    from affectgpt.data.collate import Collator

    batch = Collator(model.tokenizer, model.token_plan(), max_length=seq, train=train)(items)
    if train and batch["input_ids"].shape[1] != seq:
        raise RuntimeError(f"synthetic batch has {batch['input_ids'].shape[1]} tokens per sequence, expected {seq}")
    return to_device(batch, device)


def to_device(batch: dict, device: torch.device) -> dict:
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            out[k] = v.to(device)
        elif isinstance(v, list) and v and all(isinstance(x, torch.Tensor) or x is None for x in v):
            out[k] = [None if x is None else x.to(device) for x in v]
        else:
            out[k] = v
    return out


@torch.no_grad()
def cached_batch(model, batch: dict, amp) -> dict:
    """The batch with frames/audio replaced by the frozen encoders' outputs, computed once."""
    with amp():
        feats = model.encode_media(batch)
    out = {k: v for k, v in batch.items() if k not in ("frames", "audio")}
    if "video" in feats:
        out["video_feats"] = feats["video"]
    if "audio" in feats:
        out["audio_feats"] = feats["audio"]
    return out


def set_grad_ckpt(model, mode, every: int = 1) -> None:
    set_gradient_checkpointing(model.llm, mode, every)


def train_mode(model) -> None:
    """Training mode for the adapters and the LLM (LoRA dropout, checkpointing); the frozen
    encoders stay in eval mode."""
    model.train()
    for enc in (model.vision, model.audio):
        if enc is not None:
            enc.eval()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / GIB if device.type == "cuda" else None


def timed_steps(step, warmup: int, steps: int, device: torch.device, seconds_left: float) -> tuple[float, float]:
    """Run ``warmup`` untimed steps, then up to ``steps`` timed ones (fewer when the remaining
    budget would not hold them, at least one); returns (seconds per step, last loss)."""
    t0 = time.perf_counter()
    loss = None
    for _ in range(warmup):
        loss = step()
    sync(device)
    per_step = (time.perf_counter() - t0) / max(1, warmup)
    steps = max(1, min(steps, int(seconds_left / max(per_step, 1e-6))))
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    sync(device)
    return (time.perf_counter() - t0) / steps, float(loss)


class Ctx:
    """What every row needs: device, precision, budget, repetition counts, the models built."""

    def __init__(self, args, device: torch.device):
        self.args, self.device, self.dry_run = args, device, args.dry_run
        self.start = time.perf_counter()
        self.models: dict[str, object] = {}
        self.peak = peak_tflops(torch.cuda.get_device_name(device) if device.type == "cuda" else "",
                                args.peak_tflops or (DRY_RUN_PEAK_TFLOPS if args.dry_run else None))

    def seconds_left(self) -> float:
        return self.args.budget_s - (time.perf_counter() - self.start)

    def amp(self):
        if self.args.mixed_precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def model(self, role: str):
        """The model of a role, built on first use; a model of another role is freed first."""
        for other in [k for k in self.models if k != role]:
            self.drop(other)
        if role not in self.models:
            work = Path(self.args.work)
            self.models[role] = build(role, self.dry_run, work, self.device)
        return self.models[role]

    def drop(self, role: str) -> None:
        self.models.pop(role, None)
        free(self.device)

    def accelerator(self, cfg):
        """One Accelerator for the run (Accelerate keeps its state per process), from the recipe's
        own ``make_accelerator``."""
        if not hasattr(self, "_accelerator"):
            from affectgpt.recipe.distributed import make_accelerator

            self._accelerator, _ = make_accelerator(cfg)
        return self._accelerator


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def fill_throughput(res: Result, ctx: Ctx, step_s: float, micro: list[dict], flops_per_step: float) -> None:
    n = sum(len(b["names"]) for b in micro)
    tokens = sum(int(b["attention_mask"].sum()) for b in micro)
    res.step_s, res.samples_s, res.tokens_s = step_s, n / step_s, tokens / step_s
    res.tflops = flops_per_step / step_s / 1e12
    res.mfu = res.tflops / ctx.peak if ctx.peak else None
    res.extra["model_tflop_per_step"] = flops_per_step / 1e12
    res.extra["samples_per_step"], res.extra["tokens_per_step"] = n, tokens
    res.extra["rows_per_step"] = sum(int(b["input_ids"].shape[0]) for b in micro)
    res.extra["row_tokens_per_step"] = sum(int(b["input_ids"].numel()) for b in micro)  # padding included


def step_flops(model, micro: list[dict], audio_seconds: float) -> float:
    """Model FLOPs of one step (``affectgpt.model.flops``): every sample at its own length; micro-batches
    that carry raw media (online rows; cached rows hold only features) add the frozen encoders for clips
    of ``audio_seconds``."""
    shape = llm_shape(model.llm)
    return sum(batch_flops(model, b, shape, int(audio_seconds * SAMPLE_RATE)) for b in micro)


def emer_items(model, n: int, seq: int, audio_seconds: float, seed: int) -> list[dict]:
    """Clips whose prompt + target lengths are uniform in [0.5, 1.5) x seq (seeded), as EMER's
    descriptions vary; the target has one word per wanted token (common words are one token)."""
    from affectgpt.data.collate import Collator

    items = make_items(model, n, 1, audio_seconds, seed)
    probe = Collator(model.tokenizer, model.token_plan(), max_length=10**9)
    rng = random.Random(seed)
    for item in items:
        want = int(seq * (0.5 + rng.random()))
        prompt = len(probe.encode({**item, "target": ""})[0])
        item["target"] = " ".join(rng.choice(WORDS) for _ in range(max(1, want - prompt - 1)))
    return items
