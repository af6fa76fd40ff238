"""The artifact format: what a training checkpoint or an export holds and how either is loaded.

A training checkpoint is ``config.yaml`` + ``trainable.safetensors`` (:mod:`affectgpt.recipe.checkpoint` writes it);
an export (:mod:`affectgpt.runtime.export` writes it) is an adapter bundle or a merged LLM with
``affectgpt.json``, the record of everything inference needs besides weights. Loading an export
checks the rebuilt model against that record (token plan, preprocessing, prompt), so inference never
silently differs from training. Every load is strict.

What an artifact may not decide (docs/safety.md): whether Python code shipped with it runs. An
artifact whose record asks for ``trust_remote_code`` is refused unless the loading command says
``trust_remote_code=true`` itself. An export's weight files are checked against the sha256 its
record holds before they are read (``verify_hashes=False`` skips that).

The loaders take the model class (``AffectGPT``, whose ``from_pretrained`` calls them): this module sits
below the class's, so that the class can load itself without an import cycle.
"""

from __future__ import annotations

import copy
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from affectgpt.core.errors import reading
from affectgpt.core.plan import DEFAULT_GENERATION, MODALITY_TOKENS, OFFICIAL_MODALITY_TOKENS
from affectgpt.data.prompts import QUESTIONS, SYSTEM_PROMPT
from affectgpt.model.config import model_config, prepare
from affectgpt.model.parts import BUNDLED, bundle_state, load_bundle_state

FORMAT = "affectgpt-export"
FORMAT_VERSION = 1
META = "affectgpt.json"
ADAPTERS = "adapters.safetensors"
CHECKPOINT_WEIGHTS = "trainable.safetensors"  # a training checkpoint's weights (recipe.checkpoint writes them)
# The model parts whose whole state adapters.safetensors holds (affectgpt.model.parts decides which).
ADAPTER_MODULES = BUNDLED


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):  # hashlib drops the GIL on blocks this size
            h.update(block)
    return h.hexdigest()


def verify_files(folder: Path, recorded: dict | None, where: Path) -> None:
    """Every weight file of an export against the sha256 its record holds (files hashed in parallel
    threads: a merged 7B export has several shards); a safetensors file the record does not list is
    refused too, since nothing vouches for it."""
    if not isinstance(recorded, dict) or not recorded:
        raise ValueError(f"{where}: records no sha256 of its weight files ('files'); verify_hashes=false loads it "
                         "unchecked")
    unlisted = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.safetensors")
                      if p.relative_to(folder).as_posix() not in recorded)
    if unlisted:
        raise ValueError(f"{folder / unlisted[0]}: a weight file {where} does not record; verify_hashes=false loads "
                         "it unchecked")
    paths = {name: folder / name for name in recorded}
    absent = [str(p) for p in paths.values() if not p.is_file()]
    if absent:
        raise FileNotFoundError(f"{absent[0]}: missing (recorded in {where})")
    with ThreadPoolExecutor(max_workers=min(4, len(paths))) as pool:
        found = dict(zip(paths, pool.map(sha256, paths.values()), strict=True))
    for name, digest in found.items():
        if digest != recorded[name]:
            raise ValueError(f"{paths[name]}: sha256 {digest[:12]}... differs from {str(recorded[name])[:12]}... "
                             f"recorded in {where} (corrupt or changed); verify_hashes=false loads it anyway")


def check_remote_code(asked, allowed: bool, where: Path) -> None:
    """An artifact asks for ``trust_remote_code``; only the loading command's own switch can allow it."""
    if asked and not allowed:
        raise ValueError(f"{where}: asks for trust_remote_code=true (the model folder's own Python code would run); "
                         "refused: a file cannot turn that on. If you trust this artifact, add trust_remote_code=true "
                         "to the command line")


def adapter_state(model) -> dict[str, torch.Tensor]:
    """Every persistent tensor of the bundled parts (``parts.bundle_state``: the modality adapters and the
    added embedding rows, trained or not: the artifact must not depend on a seed to rebuild a frozen one)."""
    return bundle_state(model)


def load_adapter_state(model, state: dict[str, torch.Tensor], source: str) -> None:
    """Strict load of ``adapter_state`` (``parts.load_bundle_state``): every key present, nothing extra,
    shapes equal."""
    load_bundle_state(model, state, source)


def preprocessing(model) -> dict:
    return {"video": model.vision.preprocessing() if model.vision is not None else None,
            "audio": model.audio.preprocessing() if model.audio is not None else None}


def prompt_spec(model, system: str | None = None) -> dict:
    if model.cfg.prompt == "official":  # the released ###Human: format: no system prompt, its own placeholders
        return {"style": "official", "system": None, "questions": dict(QUESTIONS),
                "chat_template": model.tokenizer.chat_template, "modality_tokens": dict(OFFICIAL_MODALITY_TOKENS)}
    return {"system": SYSTEM_PROMPT if system is None else system, "questions": dict(QUESTIONS),
            "chat_template": model.tokenizer.chat_template, "modality_tokens": dict(MODALITY_TOKENS)}


def describe(model, kind: str, generation: dict | None = None, source: dict | None = None) -> dict:
    """The ``affectgpt.json`` record of a loaded model (without the file hashes)."""
    base = model.llm.get_base_model() if hasattr(model.llm, "get_base_model") else model.llm
    model_cfg = asdict(model.cfg)
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "kind": kind,
        "model": model_cfg,
        "llm": {
            "base": model.cfg.llm.name_or_path,
            "path": "llm" if kind == "merged" else None,
            "adapter": "llm_adapter" if kind == "adapter" else None,
            "dtype": str(next(base.parameters()).dtype).replace("torch.", ""),
            "vocab_size": base.get_input_embeddings().weight.shape[0],
            "lora_merged": kind == "merged",
        },
        "tokenizer": "tokenizer",
        "adapters": ADAPTERS,
        "preprocessing": preprocessing(model),
        "prompt": prompt_spec(model),
        "token_plan": asdict(model.token_plan()),
        "generation": dict(generation or DEFAULT_GENERATION),
        "source": source or {},
    }


def load_trainable(folder: str | Path) -> dict[str, torch.Tensor]:
    """The trainable weights of a training checkpoint (``trainable.safetensors``)."""
    path = Path(folder) / CHECKPOINT_WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no trainable weights in checkpoint {folder}")
    with reading(path):
        return load_file(str(path))


@dataclass
class Loaded:
    """A model ready to generate, with what its artifact says about prompting and decoding."""

    model: object
    kind: str  # checkpoint | adapter | merged
    generation: dict = field(default_factory=dict)
    system: str | None = None  # None: the prompts module's default system prompt


def load_checkpoint_model(cls, folder: str | Path, device: str = "cpu", dtype: str | None = None,
                          trust_remote_code: bool = False):
    """Build the model (``cls``, from the config) a training checkpoint describes and load its trainable weights
    strictly; returns it (in eval mode) and the checkpoint's config.
    ``trust_remote_code``: the caller's (command line's) switch; the checkpoint's own is never used."""
    folder = Path(folder)
    cfg_path = folder / "config.yaml"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{folder}: not a checkpoint (no config.yaml)")
    cfg = OmegaConf.load(cfg_path)
    check_remote_code(OmegaConf.select(cfg, "model.llm.trust_remote_code", default=False), trust_remote_code,
                      cfg_path)
    cfg.model.llm.trust_remote_code = bool(trust_remote_code)
    if dtype:
        cfg.model.llm.dtype = dtype
    if "kernels" in cfg.model.llm:  # a training-speed option (same math); inference runs anywhere without it
        cfg.model.llm.kernels = "none"
    model = cls(model_config(prepare(cfg.model)), device)
    model.load_trainable_state_dict(load_trainable(folder), source=str(folder))
    model.eval()
    return model, cfg


def load_export(cls, folder: str | Path, device: str = "cpu", dtype: str | None = None,
                trust_remote_code: bool = False, verify_hashes: bool = True) -> Loaded:
    """Build the model (``cls``) an ``affectgpt.json`` export describes: base LLM + peft adapter, or the
    merged LLM; then the modality adapters, strictly; then check it against the record.
    ``trust_remote_code`` is the caller's switch (the record's is refused, not used); ``verify_hashes``
    checks the weight files against the record's sha256 first."""
    folder = Path(folder)
    meta_path = folder / "affectgpt.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{meta_path}: unreadable ({e})") from None
    if meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
        raise ValueError(f"{meta_path}: expected format {FORMAT!r} version {FORMAT_VERSION}, "
                         f"found {meta.get('format')!r} version {meta.get('version')!r}")
    kind = meta.get("kind")
    if kind not in ("adapter", "merged"):
        raise ValueError(f"{meta_path}: kind must be 'adapter' or 'merged', found {kind!r}")
    if verify_hashes:
        verify_files(folder, meta.get("files"), meta_path)
    d = copy.deepcopy(meta["model"])
    check_remote_code(d["llm"].get("trust_remote_code"), trust_remote_code, meta_path)
    d["llm"]["trust_remote_code"] = bool(trust_remote_code)
    d["llm"]["tokenizer"] = str(folder / meta["tokenizer"])
    d["llm"]["lora"]["enabled"] = False  # LoRA comes from the artifact, not a fresh init
    if kind == "merged":
        d["llm"]["name_or_path"] = str(folder / meta["llm"]["path"])
    if dtype:
        d["llm"]["dtype"] = dtype
    d["llm"]["kernels"] = "none"  # as for checkpoints: a training-speed option
    model = cls(model_config(d), device)
    if kind == "adapter":
        from peft import PeftModel  # lazy: peft takes seconds to import; only LoRA needs it

        adapter_dir = folder / meta["llm"]["adapter"]
        if not (adapter_dir / "adapter_config.json").is_file():
            raise FileNotFoundError(f"{adapter_dir}: no adapter_config.json (incomplete adapter bundle)")
        model.llm = PeftModel.from_pretrained(model.llm, str(adapter_dir), is_trainable=False)
    adapters = folder / meta.get("adapters", ADAPTERS)
    if not adapters.is_file():
        raise FileNotFoundError(f"{adapters}: missing (incomplete export)")
    load_adapter_state(model, load_file(str(adapters)), str(adapters))
    if model.added_rows is not None:  # the rows the export saved, not the ones this build computed
        model.added_rows.write(model.llm)
    model.to(device)
    model.eval()
    check_against_record(model, meta, meta_path)
    return Loaded(model, kind, dict(meta.get("generation") or {}), meta["prompt"]["system"])


def check_against_record(model, meta: dict, where: Path) -> None:
    """Raise when the built model would prepare inputs differently from the recorded export."""
    checks = [("token_plan", asdict(model.token_plan()), meta.get("token_plan")),
              ("preprocessing", preprocessing(model), meta.get("preprocessing")),
              ("prompt.questions", dict(QUESTIONS), meta["prompt"].get("questions")),
              ("prompt.chat_template", model.tokenizer.chat_template, meta["prompt"].get("chat_template"))]
    for key, built, recorded in checks:
        built = json.loads(json.dumps(built))
        if built != recorded:
            raise ValueError(f"{where}: {key} of the rebuilt model differs from the export's record: "
                             f"{'; '.join(_differences(built, recorded, key))[:600]}")


def _differences(built, recorded, path: str) -> list[str]:
    if isinstance(built, dict) and isinstance(recorded, dict):
        out = []
        for k in sorted(set(built) | set(recorded), key=str):
            if k not in recorded:
                out.append(f"{path}.{k} built {json.dumps(built[k])}, not recorded")
            elif k not in built:
                out.append(f"{path}.{k} recorded {json.dumps(recorded[k])}, not built")
            elif built[k] != recorded[k]:
                out += _differences(built[k], recorded[k], f"{path}.{k}")
        return out
    return [f"{path} built {json.dumps(built)[:120]}, recorded {json.dumps(recorded)[:120]}"]


def artifact_kind(path: str | Path) -> str:
    """'checkpoint', 'adapter' or 'merged'; ValueError naming the folder when it is neither."""
    path = Path(path)
    if (path / "affectgpt.json").is_file():
        try:
            return json.loads((path / "affectgpt.json").read_text(encoding="utf-8"))["kind"]
        except (json.JSONDecodeError, KeyError, OSError) as e:
            raise ValueError(f"{path / 'affectgpt.json'}: unreadable ({e})") from None
    if (path / "config.yaml").is_file():
        return "checkpoint"
    if not path.exists():
        raise ValueError(f"{path}: no such folder")
    raise ValueError(f"{path}: neither a training checkpoint (config.yaml) nor an export (affectgpt.json)")


def load_model(cls, path: str | Path, device: str = "cpu", dtype: str | None = None, merge_lora: bool = False,
               trust_remote_code: bool = False, verify_hashes: bool = True) -> Loaded:
    """Load a training checkpoint or an export (adapter bundle or merged) as a ``cls``. ``merge_lora`` folds
    LoRA into the base weights after loading (what a merged export holds): one matmul per
    projection instead of three, 3x faster decoding for 7B on a GPU (benchmarks/gpu_check.py).
    ``trust_remote_code`` and ``verify_hashes``: see ``load_export``; they come from the command line."""
    kind = artifact_kind(path)
    with reading(path, KeyError):  # a truncated weight file, a refused pickle, a record missing a key
        if kind == "checkpoint":
            model, _ = load_checkpoint_model(cls, path, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
            loaded = Loaded(model, "checkpoint")
        else:
            loaded = load_export(cls, path, device=device, dtype=dtype, trust_remote_code=trust_remote_code,
                                 verify_hashes=verify_hashes)
    if merge_lora and hasattr(loaded.model.llm, "merge_and_unload"):
        loaded.model.llm = loaded.model.llm.merge_and_unload()
    return loaded
