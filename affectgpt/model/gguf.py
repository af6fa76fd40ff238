"""A GGUF file (llama.cpp's format) → an ordinary Hugging Face folder that ``model.llm.name_or_path`` reads.

``python -m affectgpt.apps.gguf FILE.gguf OUT_DIR``

transformers de-quantizes GGUF weights on load (needs the ``gguf`` package: ``pip install gguf``)
but refuses to ``save_pretrained`` a model loaded that way, so the weights are copied into a
plain model of the same config, checked key by key, and saved as safetensors with the
tokenizer and chat template the GGUF file carries. Quantized files (Q4_1, ...) give float32
weights with the quantization error they had; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path


def convert(gguf_file: str | Path, output: str | Path) -> Path:
    """Write ``output`` (config.json, model.safetensors, tokenizer files) from ``gguf_file``."""
    import torch  # lazy: apps.gguf prints its usage error before torch loads
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer  # lazy: as torch

    src = Path(gguf_file)
    if not src.is_file():
        raise FileNotFoundError(f"{src}: no such GGUF file")
    tok = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name, dtype=torch.float32)
    fields = loaded.config.to_dict()
    fields.pop("quantization_config", None)
    config = AutoConfig.for_model(fields.pop("model_type"), **fields)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    result = plain.load_state_dict(loaded.state_dict(), strict=True)
    if result.missing_keys or result.unexpected_keys:
        raise RuntimeError(f"{src}: weights do not fit {type(plain).__name__}: {result}")
    out = Path(output)
    plain.save_pretrained(out)
    tok.save_pretrained(out)
    return out


if __name__ == "__main__":  # the command line moved to affectgpt/apps; say so instead of exiting 0 silently
    import sys

    from affectgpt.core.errors import moved_command

    sys.exit(moved_command("affectgpt.model.gguf"))
