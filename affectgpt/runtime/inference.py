"""Inference: load a checkpoint or an export, run clips, return ``{"name", "description", "emotions", "task"}``.

``load_model`` accepts a training checkpoint (``config.yaml`` + ``trainable.safetensors``), an
adapter bundle or a merged export (``affectgpt.json``, see :mod:`affectgpt.runtime.export`). An export is
checked against the model it builds: the token plan, the preprocessing and the prompt questions
must equal the recorded ones, so inference never silently differs from training.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
from tqdm import tqdm

from affectgpt import eval as scorer
from affectgpt.core.predictions import check_predictions
from affectgpt.data.collate import ClipDataset, Collator, worker_init
from affectgpt.data.manifest import Sample
from affectgpt.eval import extract_emotions
from affectgpt.model import artifact
from affectgpt.model.affectgpt import AffectGPT
from affectgpt.model.artifact import Loaded, artifact_kind  # noqa: F401  (for the apps and tests that load)
from affectgpt.runtime import decoding


def load_model(path: str | Path, **kwargs) -> Loaded:
    """``artifact.load_model`` for ``AffectGPT``: the model with its artifact's generation defaults and system
    prompt (``kwargs``: device, dtype, merge_lora, trust_remote_code, verify_hashes)."""
    return artifact.load_model(AffectGPT, path, **kwargs)


def emotions_from_text(text: str) -> list[str]:
    """The emotion list of a generated answer, read exactly as the scorer reads a description:
    the structured ending (``affectgpt.eval.extract.parse_emotion_list``), else a lexicon scan."""
    return extract_emotions(text)


# ----------------------------------------------------------------------------- timing
class StepClock:
    """Timestamps of every forward pass of the LLM during ``generate``: the first is the prefill,
    each later one decodes one token per sequence. Hooks on the causal LM, removed on exit."""

    def __init__(self, model):
        llm = model.llm.get_base_model() if hasattr(model.llm, "get_base_model") else model.llm
        self.module, self.device = llm, model.device
        self.starts: list[float] = []
        self.ends: list[float] = []

    def _now(self) -> float:
        return decoding.synced_now(self.device)

    def __enter__(self):
        self.t0 = self._now()
        self.handles = [self.module.register_forward_pre_hook(lambda *_: self.starts.append(self._now())),
                        self.module.register_forward_hook(lambda *_: self.ends.append(self._now()))]
        return self

    def __exit__(self, *exc):
        self.t1 = self._now()
        for h in self.handles:
            h.remove()

    def summary(self) -> dict:
        """prefill_s: generate() start → first forward done (adapters, splice, prompt pass);
        tokens: forward passes (one new token each); tokens_per_s over the passes after the first."""
        if not self.ends:
            return {"prefill_s": 0.0, "tokens": 0, "generate_s": 0.0, "tokens_per_s": 0.0}
        n, rest = len(self.ends), self.ends[-1] - self.ends[0]
        return {"prefill_s": self.ends[0] - self.t0, "tokens": n, "generate_s": self.t1 - self.t0,
                "tokens_per_s": (n - 1) / rest if n > 1 and rest > 0 else 0.0}


@torch.no_grad()
def generate_batch(model, batch: dict, gen: dict, clock: StepClock | None = None,
                   decode: str = "plain") -> tuple[list[str], dict]:
    """Texts for a collated batch, and seconds spent in the frozen encoders and in generation.
    ``decode``: plain (transformers' generate) or a fixed-shape one-clip path of :mod:`affectgpt.runtime.decoding`."""
    t0 = decoding.synced_now(model.device)
    feats = model.encode_media(batch)
    t1 = decoding.synced_now(model.device)
    batch = dict(batch)
    if "video" in feats:
        batch["video_feats"] = feats["video"]
    if "audio" in feats:
        batch["audio_feats"] = feats["audio"]
    if decode != "plain":
        texts, timing = decoding.generate(model, batch, gen, decoding.check_mode(decode, model.device))
    elif clock is None:
        texts = model.generate(batch, **gen)
        timing = {"generate_s": decoding.synced_now(model.device) - t1}
    else:
        with clock:
            texts = model.generate(batch, **gen)
        timing = clock.summary()
    timing["encode_s"] = t1 - t0
    return texts, timing


def make_collator(model, system: str | None = None, plan=None) -> Collator:
    return Collator(model.tokenizer, plan or model.token_plan(), max_length=10**9, train=False, system=system)


def rows_for(batch: dict, texts: list[str], task: str) -> list[dict]:
    rows = [{"name": n, "task": task, "error": e} for n, e in batch["bad"]]
    for name, text in zip(batch.get("names", []), texts, strict=False):
        rows.append({"name": name, "task": task, "description": text, "emotions": emotions_from_text(text)})
    return rows


def sample_fields(sample: Sample) -> dict:
    """What an output row carries about its sample beside the prediction: a timeline segment's
    ``start``/``end`` and, with ``subtitle=auto``, the transcript (``subtitle``, ``subtitle_source``, ``asr``)."""
    out = {k: sample.extra[k] for k in ("start", "end") if k in sample.extra}
    if out:
        out["subtitle"] = sample.subtitle
    out.update(sample.extra.get("asr") or {})
    return out


def iter_batches(model, samples: list[Sample], task: str, batch_size: int, num_workers: int, system: str | None = None,
                 visual: str = "frames", plan=None):
    """Collated batches; media decode in ``num_workers`` DataLoader workers, ahead of generation.
    ``plan``: the model's token plan by default; one with ``has_vision``/``has_audio`` off treats
    every clip as one without that stream (the modality ablation)."""
    plan = plan or model.token_plan()
    loader = torch.utils.data.DataLoader(
        ClipDataset(samples, plan, task=task, visual=visual, crop_faces=True), batch_size=batch_size,
        collate_fn=make_collator(model, system, plan),
        num_workers=num_workers, worker_init_fn=worker_init, prefetch_factor=2 if num_workers else None)
    return iter(loader)


@torch.no_grad()
def predict(model, samples: list[Sample], task: str = "describe", batch_size: int = 8, max_new_tokens: int = 256,
            progress: bool = False, num_workers: int = 0, system: str | None = None, visual: str = "frames",
            plan=None, **gen) -> list[dict]:
    """Generate for each sample; a clip that fails to decode becomes an error row, never a swap.
    ``plan``: see ``iter_batches``."""
    rows = []
    bar = tqdm(total=len(samples), disable=not progress, desc=f"generate ({task})", dynamic_ncols=True)
    for batch in iter_batches(model, samples, task, batch_size, num_workers, system, visual, plan):
        texts = model.generate(batch, max_new_tokens=max_new_tokens, **gen) if batch.get("names") else []
        rows += rows_for(batch, texts, task)
        bar.update(len(batch["bad"]) + len(batch.get("names", [])))
    bar.close()
    return rows


@torch.no_grad()
def predict_one(model, sample: Sample, task: str, gen: dict, system: str | None = None,
                profile: bool = False, decode: str = "plain", visual: str = "frames") -> tuple[dict, dict]:
    """One clip, in this process (no workers): its row and, with ``profile``, a timing breakdown.
    ``decode``: see ``generate_batch``; ``visual="faces"`` crops faces on the fly without a face file."""
    t0 = time.perf_counter()
    item = ClipDataset([sample], model.token_plan(), task=task, visual=visual, crop_faces=True)[0]
    t1 = time.perf_counter()
    batch = make_collator(model, system)([item])
    t2 = time.perf_counter()
    if not batch.get("names"):
        return rows_for(batch, [], task)[0], {}
    texts, timing = generate_batch(model, batch, gen, StepClock(model) if profile else None, decode=decode)
    timing.update(decode_s=t1 - t0, prompt_s=t2 - t1, prompt_tokens=int(batch["input_ids"].shape[1]),
                  prompt_text=model.tokenizer.decode(batch["input_ids"][0]))
    return rows_for(batch, texts, task)[0], timing


# ----------------------------------------------------------------------------- manifest runs
def read_done(out: Path, inputs: tuple[Path, ...] = ()) -> list[dict]:
    """Rows already in a predictions file, for resuming, after ``check_predictions`` accepted the
    whole file; only then is the torn start of a row at its end (a kill mid-write: rows are written
    with their newline) cut off, so its sample is rerun."""
    out = Path(out)
    rows, keep = check_predictions(out, inputs)
    if out.is_file() and keep < out.stat().st_size:
        with open(out, "r+b") as f:
            f.truncate(keep)
    return rows


@torch.no_grad()
def run_manifest(
    model,
    samples: list[Sample],
    out: Path,
    task: str,
    gen: dict,
    batch_size: int = 8,
    num_workers: int = 1,
    system: str | None = None,
    progress: bool = True,
    visual: str = "frames",
    inputs: tuple[Path, ...] = (),
) -> dict:
    """Append a row per sample not yet in ``out``, flushed and fsynced per batch (an interruption
    loses at most the batch in flight); a clip that fails becomes an error row and the run goes on."""
    out = Path(out)
    done = {r["name"] for r in read_done(out, inputs)}
    todo = [s for s in samples if s.name not in done]
    out.parent.mkdir(parents=True, exist_ok=True)
    counts = {"skipped": len(samples) - len(todo), "written": 0, "errors": 0}
    t0 = time.perf_counter()
    bar = tqdm(total=len(samples), initial=counts["skipped"], disable=not progress, desc=f"infer ({task})",
               dynamic_ncols=True, unit="clip")
    fields = {s.name: sample_fields(s) for s in todo}
    with out.open("a", encoding="utf-8") as f:
        if todo:
            for batch in iter_batches(model, todo, task, batch_size, num_workers, system, visual):
                texts = model.generate(batch, **gen) if batch.get("names") else []
                rows = [{**r, **fields.get(r["name"], {})} for r in rows_for(batch, texts, task)]
                f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
                f.flush()
                os.fsync(f.fileno())
                counts["written"] += len(rows)
                counts["errors"] += sum(1 for r in rows if r.get("error"))
                bar.update(len(rows))
    bar.close()
    counts["seconds"] = time.perf_counter() - t0
    return counts


def score_manifest(out: Path, samples: list[Sample], where: str) -> dict:
    """Score the predictions in ``out`` against the manifest's gold emotions (and descriptions)."""
    gold = [{"name": s.name, "emotions": list(s.emotions), "description": s.description or ""}
            for s in samples if s.emotions is not None]
    if not gold:
        raise ValueError(f"{where}: no sample has gold 'emotions'; nothing to score")
    names = {g["name"] for g in gold}
    preds = [r for r in read_done(out) if not r.get("error") and r["name"] in names]
    return scorer.score(preds, gold)
