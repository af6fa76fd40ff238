"""Export a training checkpoint as an artifact that inference (and plain transformers / peft) can load.

``python -m affectgpt.export checkpoint=DIR output=DIR [merge=true|false] [dtype=...]``

Both kinds hold:

- ``affectgpt.json``: everything inference needs besides weights: the model config (encoder
  names/tags or paths, adapter shapes, LLM), the preprocessing the encoders apply (frames, image
  size, mean/std, audio policy), the prompt (system prompt, questions, chat template, modality
  tokens), the token plan, generation defaults, and sha256 of every weight file;
- ``adapters.safetensors``: the modality adapters (Q-Formers / pooling heads, projections,
  fixed feature statistics), every tensor of their ``state_dict``; in an adapter bundle also the
  embedding rows added for placeholder tokens the base vocabulary lacks (``added_rows.*``; a
  merged LLM holds them in its own table);
- ``tokenizer/``: the tokenizer files (with the added modality placeholder tokens).

Adapter bundle (``merge=false``): ``llm_adapter/`` is a peft adapter folder
(``adapter_config.json`` + ``adapter_model.safetensors``, LoRA and any ``modules_to_save``) that
``PeftModel.from_pretrained(base, "llm_adapter")`` puts onto the base LLM named in
``affectgpt.json``. Merged (``merge=true``): ``llm/`` is the LLM with LoRA merged, written by
``save_pretrained`` (safetensors) together with the tokenizer, so
``AutoModelForCausalLM.from_pretrained("llm")`` loads it with no peft and no AffectGPT code.

No pickles: every weight file is safetensors. Written to a temporary folder and renamed when
complete, so an interrupted export leaves no half artifact.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import save_file

from affectgpt.core.fileio import atomic_dir
from affectgpt.model.affectgpt import AffectGPT
from affectgpt.model.artifact import (  # noqa: F401  (the format's names, re-exported for users of this module)
    ADAPTER_MODULES,
    ADAPTERS,
    DEFAULT_GENERATION,
    FORMAT,
    FORMAT_VERSION,
    META,
    adapter_state,
    describe,
    load_adapter_state,
    load_checkpoint_model,
    preprocessing,
    prompt_spec,
    sha256,
)
from affectgpt.runtime.model_card import write_model_card


def export(checkpoint: str | Path, output: str | Path, merge: bool = False, dtype: str | None = None,
           generation: dict | None = None, trust_remote_code: bool = False) -> Path:
    """Write an adapter bundle (``merge=False``) or a merged export of a training checkpoint
    (``trust_remote_code``: the command line's switch, see ``artifact.load_checkpoint_model``)."""
    checkpoint, output = Path(checkpoint), Path(output)
    if output.exists() and not (output / META).is_file():
        raise FileExistsError(f"{output}: exists and is not an AffectGPT export; refusing to overwrite it")
    model, cfg = load_checkpoint_model(AffectGPT, checkpoint, device="cpu", dtype=dtype,
                                       trust_remote_code=trust_remote_code)
    if not hasattr(model.llm, "merge_and_unload"):
        raise ValueError(
            f"{checkpoint}: the LLM has no LoRA (model.llm.lora.enabled=false); nothing to export as an adapter"
        )
    if not merge and str(getattr(model.cfg, "init", "pretrained")) == "random":
        raise ValueError(
            f"{checkpoint}: the base LLM was randomly initialised (model.init=random), so an adapter bundle "
            "could not be put back onto it; use merge=true"
        )
    state = (
        json.loads((checkpoint / "trainer_state.json").read_text())
        if (checkpoint / "trainer_state.json").is_file()
        else {}
    )
    source = {"checkpoint": str(checkpoint.resolve()), "step": state.get("step"),
              "trainable_sha256": sha256(checkpoint / "trainable.safetensors")}
    meta = describe(model, "merged" if merge else "adapter", generation, source)
    with atomic_dir(output) as tmp:  # an old export of that name is replaced only when this one is whole
        _write_export(tmp, model, meta, merge, checkpoint, output)
    return output


def _write_export(tmp: Path, model, meta: dict, merge: bool, checkpoint: Path, output: Path) -> None:
    model.tokenizer.save_pretrained(tmp / "tokenizer")
    state = {k: v for k, v in adapter_state(model).items() if not (merge and k.startswith("added_rows."))}
    save_file(state, str(tmp / ADAPTERS), metadata={"format": FORMAT})
    if merge:
        merged = model.llm.merge_and_unload()  # LoRA folded into the base weights, modules_to_save swapped in
        merged.save_pretrained(tmp / "llm")  # safetensors by default in transformers 5
        model.tokenizer.save_pretrained(tmp / "llm")  # so AutoTokenizer.from_pretrained("llm") works alone
        weights = sorted((tmp / "llm").glob("*.safetensors"))
    else:
        # LoRA only: the added embedding rows are in adapters.safetensors, not a copy of the whole table
        model.llm.save_pretrained(tmp / "llm_adapter", save_embedding_layers=False)
        weights = [tmp / "llm_adapter" / "adapter_model.safetensors"]
        if not weights[0].is_file() or not (tmp / "llm_adapter" / "adapter_config.json").is_file():
            raise RuntimeError(
                f"{tmp / 'llm_adapter'}: peft did not write adapter_config.json + adapter_model.safetensors"
            )
    if not weights:
        raise RuntimeError(f"{tmp / 'llm'}: save_pretrained wrote no safetensors file")
    pickles = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.suffix in {".bin", ".pt", ".pth", ".pkl"})
    if pickles:
        raise RuntimeError(f"{output}: export would contain pickle files {pickles}")
    meta["files"] = {str(p.relative_to(tmp)): sha256(p) for p in [tmp / ADAPTERS, *weights]}
    (tmp / META).write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    write_model_card(tmp, meta, checkpoint, output)  # README.md: the Hugging Face model card
