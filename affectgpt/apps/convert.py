"""Import a released AffectGPT checkpoint (ICML 2025 / MER2025 baselines) as a checkpoint of this repository.

    python -m affectgpt.apps.convert official=FILE.pth output=DIR [variant=face|frame] [model.llm.name_or_path=...]

Reads the ``.pth`` with ``torch.load(weights_only=True)`` (a pickle payload is refused, naming the
file), checks its ``model`` tensors key by key and shape by shape against the released layout
(:mod:`affectgpt.model.official`; every missing, unexpected or mis-shaped key is named), drops the
unused ``image_llama_proj`` by name, renames the rest onto ``model=affectgpt-official`` (built with
no weights on the ``meta`` device, so the renamed set must equal the model's trainable set) and
writes ``config.yaml`` + ``trainable.safetensors`` (+ ``converted.json``: the source and what was
dropped) atomically. Options: conf/convert.yaml. Bad input: exit code 2 and one line.
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from affectgpt.apps.cli import TRAIN_VERBATIM, Command, UsageError, run

CONVERT = Command(prog="python -m affectgpt.apps.convert", config="convert", doc=__doc__.split("\n\n")[0],
                  verbatim=("official", "output", *TRAIN_VERBATIM))
VARIANTS = {"face": ("affectgpt-official", "faces"), "frame": ("affectgpt-official-frame", "frames")}
OWN_KEYS = ("official", "output", "variant")


def read_official(path: Path) -> dict:
    """The released file's dict; weights only (no code runs while reading)."""
    import torch  # lazy: the command stays torch-free until it needs the model

    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"{path}: refused, it holds pickled objects that are not plain tensors/containers "
                         f"(torch.load weights_only=True: {first[:200]})") from None
    except (RuntimeError, OSError, EOFError, ValueError) as e:
        raise UsageError(f"{path}: not a torch.save checkpoint ({str(e).splitlines()[0][:200]})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("model"), dict):
        found = sorted(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
        raise UsageError(f"{path}: expected a dict with a 'model' state dict (a released AffectGPT .pth), "
                         f"found {found}")
    from affectgpt.model.official import TOP_LEVEL  # lazy: the command stays torch-free until it needs the model

    extra = sorted(str(k) for k in obj if k not in TOP_LEVEL)
    if extra:
        raise UsageError(f"{path}: unexpected top-level keys {extra}; a released checkpoint holds {list(TOP_LEVEL)}")
    return obj


def shape_config(model_cfg: DictConfig) -> DictConfig:
    """The model config for a weightless build with the widths inference will load: a local folder's
    own config.json (its ``architecture`` cleared), else the stored architecture of a hub name."""
    shaped = model_cfg.copy()
    for part, key in (("llm", "name_or_path"), ("vision", "model"), ("audio", "model")):
        node = shaped.get(part)
        if node is not None and (Path(str(node[key])) / "config.json").is_file():
            node.architecture = None
    return shaped


def convert(cfg: DictConfig) -> Path:
    import torch  # lazy: the command stays torch-free until it needs the model

    from affectgpt.model.build import build_model  # lazy: the command stays torch-free until it needs the model
    from affectgpt.model.official import dims_of, to_ours  # lazy: the command stays torch-free until it needs the model
    from affectgpt.recipe import checkpoint as ckpt  # lazy: the command stays torch-free until it needs the model

    source, output = Path(cfg.official), Path(cfg.output)
    if output.exists():
        raise UsageError(f"{output}: exists; choose a new folder (nothing is overwritten)")
    obj = read_official(source)
    train_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k not in OWN_KEYS])
    model = build_model(shape_config(train_cfg.model), device="meta", weights="random")  # shapes only, no weights
    dims = dims_of(model)
    try:
        state, dropped = to_ours(obj["model"], dims, str(source))
    except ValueError as e:
        raise UsageError(str(e)) from None
    expected = {k: tuple(v.shape) for k, v in model.trainable_state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if expected != found:
        diff = sorted(set(expected) ^ set(found))
        diff += sorted(k for k in expected if k in found and expected[k] != found[k])
        raise UsageError(f"{source}: the converted tensors do not fit model={train_cfg.model.name} as configured "
                         f"(differing: {diff[:10]}); keep the model's LoRA and widths as released")
    epoch = obj.get("epoch")
    output.parent.mkdir(parents=True, exist_ok=True)
    folder = ckpt.save_checkpoint(
        output, state, OmegaConf.to_yaml(train_cfg, resolve=True),
        {"step": 0, "epoch": 0, "batch_in_epoch": 0, "samples_seen": 0, "bad_samples": 0, "history": []})
    record = {"official": str(source.resolve()), "epoch": int(epoch) if isinstance(epoch, int) else None,
              "variant": cfg.variant, "model": train_cfg.model.name, "tensors": len(obj["model"]),
              "converted": len(state), "dropped": dropped,
              "parameters": int(sum(v.numel() for v in state.values())), "dtype": str(torch.float32)}
    (folder / "converted.json").write_text(json.dumps(record, indent=1) + "\n")
    return folder


def _convert_command(cfg: DictConfig) -> int:
    model_name, visual = VARIANTS[cfg.variant]
    if cfg.model.name != model_name:
        raise UsageError(f"variant={cfg.variant} needs model={model_name}, got model={cfg.model.name}")
    cfg.data.visual = visual
    folder = convert(cfg)
    record = json.loads((folder / "converted.json").read_text())
    print(f"{cfg.official}: {record['tensors']} tensors checked, {record['converted']} converted "
          f"({record['parameters']:,} parameters), dropped {', '.join(record['dropped'])} -> {folder}",
          file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    # The variant picks the model config unless one is named: variant=frame -> model=affectgpt-official-frame.
    variant = next((a.split("=", 1)[1] for a in args if a.startswith("variant=")), "face")
    if variant in VARIANTS and not any(a.startswith("model=") for a in args):
        args.insert(0, f"model={VARIANTS[variant][0]}")
    return run(CONVERT, _convert_command, args)


if __name__ == "__main__":
    raise SystemExit(main())
