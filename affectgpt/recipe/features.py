"""Frozen-feature cache: CLIP and Whisper outputs computed once per clip, read by every epoch.

Layout of ``features.cache_dir``::

    identity.json                       what produced the features (see ``encoder_identity``)
    <split>-<hash>-00000.safetensors    one shard per ``features.shard_size`` manifest rows:
                                        "<name>/video" [T,Nv,Dv], "<name>/audio" [Ta,Da];
                                        metadata "samples": per sample its audio length,
                                        media file size and decode error (or null)

The identity is the encoders' names, a fingerprint of their weights (a hash of the loaded
tensors, so the same weights from any path or tag match) and every preprocessing parameter
(frames, image size, interpolation, mean/std, mel bins, audio padding and long-audio policy,
stored dtype). Training reads a cache only when its identity equals the model's and refuses a
stale one, naming the fields that differ. Shards are written to a temporary name and renamed, so
an interrupted extraction resumes at the first missing shard; under ``torchrun`` / ``accelerate
launch`` each process extracts every world-th shard.

    python -m affectgpt.apps.features [train.py overrides] [features.splits=[train,val]]
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import torch

from affectgpt.core.errors import InputError
from affectgpt.core.fileio import atomic_path, atomic_write
from affectgpt.core.plan import SAMPLE_RATE
from affectgpt.core.runlock import acquire
from affectgpt.data.collate import ClipDataset
from affectgpt.data.manifest import Sample

log = logging.getLogger("affectgpt.recipe.features")
IDENTITY = "identity.json"
CACHE_VERSION = 1
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class StaleCacheError(InputError, RuntimeError):
    """A cache whose features were produced by other encoders, preprocessing or media."""


def weights_fingerprint(module: torch.nn.Module) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes: identifies weights wherever they came from."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:20]


def _short_name(name: str | None) -> str | None:
    """A local file or folder counts by its last component (the weights fingerprint does the rest)."""
    if name is None:
        return None
    return Path(name.removeprefix("local-dir:")).name if ("/" in name or name.endswith((".pt", ".pth"))) else name


def encoder_identity(model, dtype: str = "float32", visual: str = "frames") -> dict:
    """What the cached features depend on. Equal identities give equal features."""
    plan = model.token_plan()
    ident: dict = {
        "version": CACHE_VERSION,
        "dtype": dtype,
        "decode": {"frames": plan.frames, "sample_rate": SAMPLE_RATE, "audio_max_samples": plan.audio_max_samples},
    }
    if visual != "frames":  # face crops instead of frames (data.visual); frame caches keep their old identity
        ident["decode"]["visual"] = visual
    if model.vision is not None:
        v = model.vision
        ident["vision"] = {"model": _short_name(v.cfg.model), "output": v.cfg.output,
                           "weights": weights_fingerprint(v.visual), "preprocessing": v.preprocessing()}
    if model.audio is not None:
        a = model.audio
        ident["audio"] = {"model": _short_name(a.cfg.model), "dims": a.dims, "weights": weights_fingerprint(a.encoder),
                          "preprocessing": a.preprocessing()}
    return ident


def _differences(a, b, prefix="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _differences(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [f"{prefix.rstrip('.')}: cache has {a!r}, model needs {b!r}"]


def split_tag(samples: list[Sample], manifest: str | Path) -> str:
    """Shard prefix: the manifest's stem plus a hash of its sample names (two manifests never share shards)."""
    h = hashlib.sha256("\n".join(s.name for s in samples).encode()).hexdigest()[:8]
    return f"{Path(manifest).stem}-{h}"


def _media_size(s: Sample) -> int:
    p = s.video or s.audio
    return os.stat(p).st_size if p and os.path.exists(p) else -1


class FeatureStore:
    """Read-only view of a cache folder whose identity matched; ``get(name)`` from any process
    (shards are opened lazily and memory-mapped per process, so DataLoader workers share nothing)."""

    def __init__(self, cache_dir: Path, identity: dict):
        self.dir = Path(cache_dir)
        path = self.dir / IDENTITY
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: missing; {self.dir} is not a feature cache "
                f"(extract one with python -m affectgpt.apps.features)"
            )
        found = json.loads(path.read_text())
        diff = _differences(found, identity)
        if diff:
            raise StaleCacheError(
                f"{self.dir}: stale feature cache, made by other encoders or preprocessing: "
                + "; ".join(diff[:6])
                + f"{' ...' if len(diff) > 6 else ''}. Extract into a new "
                f"features.cache_dir (python -m affectgpt.apps.features), delete this one, "
                f"or set features.cache_dir=null"
            )
        self.dtype = DTYPES[identity["dtype"]]
        self.index: dict[str, tuple[Path, dict]] = {}
        for shard in sorted(self.dir.glob("*.safetensors")):
            for entry in _shard_samples(shard):
                self.index[entry["name"]] = (shard, entry)
        self._handles: dict[Path, object] = {}
        self._pid = os.getpid()

    def missing(self, samples: list[Sample]) -> list[str]:
        return [s.name for s in samples if s.name not in self.index]

    def check_media(self, samples: list[Sample]) -> None:
        """Refuse features of media files that changed size since extraction (a cheap stat per file)."""
        changed = [
            s.name for s in samples if s.name in self.index and self.index[s.name][1]["media_size"] != _media_size(s)
        ]
        if changed:
            raise StaleCacheError(f"{self.dir}: stale features for {len(changed)} sample(s) whose media changed since "
                                  f"extraction, e.g. {changed[:5]}; delete their shards or the cache and extract again")

    def get(self, name: str) -> dict:
        from safetensors import safe_open

        if os.getpid() != self._pid:  # a forked worker must not share the parent's file handles
            self._handles, self._pid = {}, os.getpid()
        if name not in self.index:
            raise KeyError(f"{self.dir}: no features for sample {name!r}")
        shard, entry = self.index[name]
        f = self._handles.get(shard)
        if f is None:
            f = self._handles[shard] = safe_open(str(shard), framework="pt")
        keys = set(f.keys())
        out = {"error": entry["error"], "audio_samples": entry["audio_samples"], "video": None, "audio": None}
        for kind in ("video", "audio"):
            if f"{name}/{kind}" in keys:
                out[kind] = f.get_tensor(f"{name}/{kind}").float()
        return out


def _shard_samples(path: Path) -> list[dict]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "samples" not in meta:
        raise ValueError(f"{path}: not a feature shard (no 'samples' metadata)")
    return json.loads(meta["samples"])


# ---------------------------------------------------------------------------------------- extraction
def write_identity(cache_dir: Path, identity: dict) -> None:
    """Create the cache folder for ``identity``; an existing folder must hold the same identity."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / IDENTITY
    if path.is_file():
        FeatureStore(cache_dir, identity)  # raises StaleCacheError on a mismatch
        return
    with atomic_write(path) as f:
        f.write(json.dumps(identity, indent=1, sort_keys=True))


@torch.no_grad()
def extract(model, samples: list[Sample], cache_dir: Path, tag: str, identity: dict, shard_size: int = 256,
            batch_size: int = 16, num_workers: int = 1, rank: int = 0, world: int = 1, progress: bool = True,
            visual: str = "frames") -> int:
    """Encode this rank's missing shards (every world-th); returns the number of samples encoded."""
    from tqdm import tqdm

    from affectgpt.data.collate import worker_init

    dtype = DTYPES[identity["dtype"]]
    plan = model.token_plan()
    shards = [(i, samples[i * shard_size : (i + 1) * shard_size]) for i in range(-(-len(samples) // shard_size))]
    todo = [
        (i, part)
        for i, part in shards
        if i % world == rank and not (cache_dir / f"{tag}-{i:05d}.safetensors").is_file()
    ]
    bar = tqdm(total=sum(len(p) for _, p in todo), disable=not progress, desc=f"features {tag} (rank {rank})",
               unit="clip", dynamic_ncols=True)
    done = 0
    for i, part in todo:
        tensors, meta = {}, []
        loader = torch.utils.data.DataLoader(
            ClipDataset(part, plan, task="describe", visual=visual),
            batch_size=batch_size,
            collate_fn=list,
            num_workers=num_workers,
            worker_init_fn=worker_init,
        )
        for items in loader:
            ok = [it for it in items if not it["error"]]
            with_video = [it for it in ok if it["frames"] is not None]
            if with_video and model.vision is not None:
                feats = model.vision(torch.stack([it["frames"] for it in with_video]).to(model.device))
                for it, f in zip(with_video, feats, strict=True):
                    tensors[f"{it['name']}/video"] = f.to("cpu", dtype).contiguous()
            with_audio = [it for it in ok if it["audio"] is not None]
            if with_audio and model.audio is not None:
                feats = model.audio([it["audio"].to(model.device) for it in with_audio])
                for it, f in zip(with_audio, feats, strict=False):
                    tensors[f"{it['name']}/audio"] = f.to("cpu", dtype).contiguous()
            by_name = {s.name: s for s in part}
            for it in items:
                meta.append({"name": it["name"], "error": it["error"], "media_size": _media_size(by_name[it["name"]]),
                             "audio_samples": None if it["audio"] is None else int(it["audio"].shape[0])})
            bar.update(len(items))
        _write_shard(cache_dir / f"{tag}-{i:05d}.safetensors", tensors, meta)
        done += len(part)
    bar.close()
    return done


def _write_shard(path: Path, tensors: dict, meta: list[dict]) -> None:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:  # a leftover temporary file is not a *.safetensors shard
        save_file(tensors, str(tmp), metadata={"samples": json.dumps(meta), "format": "affectgpt-features"})


def open_cache(cfg, model, samples: list[Sample], accelerator) -> FeatureStore:
    """The training split's cache: extracted first (data-parallel) when ``features.extract=auto`` and
    shards are missing; refused when stale."""
    f = cfg.features
    cache_dir = Path(f.cache_dir)
    visual = cfg.data.get("visual", "frames")
    identity = encoder_identity(model, f.dtype, visual)
    if accelerator.is_main_process:
        if f.extract == "auto":
            write_identity(cache_dir, identity)
        FeatureStore(cache_dir, identity)  # fail early and clearly when stale or absent
    accelerator.wait_for_everyone()
    tag = split_tag(samples, cfg.data.get("train_manifest") or "train")
    store = FeatureStore(cache_dir, identity)
    missing = store.missing(samples)
    if missing:
        if f.extract != "auto":
            raise FileNotFoundError(
                f"{cache_dir}: no features for {len(missing)} training sample(s), e.g. {missing[:3]}; "
                f"run python -m affectgpt.apps.features or set features.extract=auto"
            )
        # One extracting job per cache (its main process holds the lock for all ranks); readers need none.
        lock = acquire(cache_dir, "python train.py (feature extraction)") if accelerator.is_main_process else None
        try:
            n = extract(model, samples, cache_dir, tag, identity, f.shard_size, f.batch_size, cfg.trainer.num_workers,
                        accelerator.process_index, accelerator.num_processes, progress=accelerator.is_main_process,
                        visual=visual)
            log.info("extracted features of %d clips into %s", n, cache_dir)
            accelerator.wait_for_everyone()
        finally:
            if lock is not None:
                lock.release()
        store = FeatureStore(cache_dir, identity)
        if store.missing(samples):
            raise RuntimeError(f"{cache_dir}: still missing features after extraction: {store.missing(samples)[:5]}")
    store.check_media(samples)
    return store
