"""Tiny random "pretrained" weights, written in the real formats the real loaders read.

The tiny default must run the same loading code as a 7B run, so on first use this writes:
an open_clip checkpoint (``clip.pt``, a state dict for the registered ``affectgpt-tiny-vit``),
a Whisper checkpoint (``whisper.pt``: ``{"dims", "model_state_dict"}``), and a Hugging Face
folder (``llm/``: ``save_pretrained`` of a tiny Qwen2 plus a tokenizer folder with a ChatML
chat template). Deterministic from the seed; written to a temporary folder and renamed when
complete.

The tokenizer is either the real Qwen2.5 one (``tokenizer="qwen2.5"``, 151,667 tokens) or a
byte-level BPE of 1,024 tokens trained on the training manifest's text (``"bpe"``, the
default). On 2 CPU cores the 152k-row output layer costs ~0.43 s per step of 8 samples even with
logits at target positions only (measured: 400 targets × 151,936 × 128), which is 4× the
rest of the step; the small BPE keeps the default run within minutes while exercising the same
code (an HF tokenizer folder, chat template, special placeholder tokens). Tests run the Qwen2.5
tokenizer through the same path.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast
from whisper.model import ModelDimensions, Whisper

from affectgpt.core.fileio import atomic_dir, iter_jsonl
from affectgpt.data.prompts import QUESTIONS, SYSTEM_PROMPT, labels_target, user_message
from affectgpt.model.encoders import OPEN_CLIP_CONFIG_DIR
from affectgpt.model.tokenizer import BUILTIN_QWEN25, CHATML_TEMPLATE, load_tokenizer

ASSET_VERSION = 1
WHISPER_DIMS = dict(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=2,
                    n_vocab=51865, n_text_ctx=16, n_text_state=64, n_text_head=2, n_text_layer=1)
QWEN2_TINY = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=151936, max_position_embeddings=2048,
                  tie_word_embeddings=True, rope_theta=1000000.0, rms_norm_eps=1e-6)


BPE_VOCAB = 1024
CHAT_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|video_pad|>", "<|audio_pad|>", "<|fusion_pad|>"]


def ensure_tiny_assets(
    root: str | Path, seed: int = 1234, tokenizer: str = "bpe", corpus: str | Path | None = None
) -> Path:
    """Create (once) and return the folder with clip.pt, whisper.pt and llm/.

    tokenizer: "bpe" (trained on the text of the JSONL manifest ``corpus``) or "qwen2.5"."""
    root = Path(root)
    if tokenizer not in ("bpe", "qwen2.5"):
        raise ValueError(f"tiny tokenizer must be 'bpe' or 'qwen2.5', got {tokenizer!r}")
    info = {"version": ASSET_VERSION, "seed": seed, "tokenizer": tokenizer}
    done = root / "ASSETS.json"
    if done.is_file():
        return _check_existing(root, info)
    if root.exists() and not (root.is_dir() and not any(root.iterdir())):  # as the synthetic data: never replaced
        raise FileExistsError(f"{root}: exists and is not a folder of tiny weights (no ASSETS.json); "
                              "refusing to replace it: choose another model.tiny_assets or remove it")
    if tokenizer == "bpe" and (corpus is None or not Path(corpus).is_file()):
        raise FileNotFoundError(
            f"{corpus}: the tiny BPE tokenizer is trained on a JSONL manifest, which does not exist "
            "(set model.tiny_corpus=PATH, or model.tiny_tokenizer=qwen2.5)"
        )
    # Own seeds, and the caller's RNG state left untouched: a run that first writes the assets
    # initialises its adapters exactly like a run that finds them.
    # keep_existing: replaces only an empty folder; when another process finished first, its folder is kept
    with atomic_dir(root, keep_existing=True) as tmp, torch.random.fork_rng(devices=[]):
        _write_clip(tmp / "clip.pt", seed)
        _write_whisper(tmp / "whisper.pt", seed + 1)
        tok = load_tokenizer(BUILTIN_QWEN25) if tokenizer == "qwen2.5" else _train_bpe(Path(corpus))
        _write_llm(tmp / "llm", seed + 2, tok)
        (tmp / "ASSETS.json").write_text(json.dumps(info))
    return _check_existing(root, info)


def _check_existing(root: Path, info: dict) -> Path:
    done = root / "ASSETS.json"
    try:
        found = json.loads(done.read_text())
    except (OSError, ValueError) as e:
        raise FileExistsError(f"{done}: unreadable ({e}); refusing to replace {root}") from None
    if found != info:
        raise RuntimeError(f"{root}: tiny weights were made with {found}, expected {info}; "
                           "delete the folder to rebuild")
    return root


def apply_tiny_llm_lora(plain: dict) -> dict:
    """The tiny model config's ``tiny_llm_lora`` settings (a trainable final norm) merged into
    ``llm.lora`` only while ``llm.name_or_path`` is the tiny random LLM under ``tiny_assets``: a real
    LLM named in the same config gets the plain settings of ``llm.lora``."""
    extras, assets = plain.get("tiny_llm_lora"), plain.get("tiny_assets")
    llm = plain.get("llm") or {}
    if not extras or not assets or not llm.get("name_or_path"):
        return plain
    if Path(llm["name_or_path"]).resolve() != (Path(assets) / "llm").resolve():
        return plain
    return {**plain, "llm": {**llm, "lora": {**(llm.get("lora") or {}), **extras}}}


def _write_clip(path: Path, seed: int) -> None:
    import open_clip  # lazy: seconds to import; only the tiny CLIP needs it

    open_clip.add_model_config(OPEN_CLIP_CONFIG_DIR)
    torch.manual_seed(seed)
    model = open_clip.create_model("affectgpt-tiny-vit", pretrained=None)
    torch.save({"state_dict": model.state_dict()}, path)


def _write_whisper(path: Path, seed: int) -> None:
    torch.manual_seed(seed)
    model = Whisper(ModelDimensions(**WHISPER_DIMS))
    torch.save({"dims": dict(WHISPER_DIMS), "model_state_dict": model.state_dict()}, path)


def _train_bpe(manifest: Path):
    """A byte-level BPE (any text still encodes) trained on the manifest's subtitles and
    descriptions plus the prompt strings; ChatML template; Qwen's special-token names."""
    texts = [
        SYSTEM_PROMPT,
        *QUESTIONS.values(),
        user_message("x", "describe", 1, 1, 1),
        user_message("", "labels", 0, 0),
    ]
    for _, rec in iter_jsonl(manifest):
        texts += [rec.get("subtitle") or "", rec.get("description") or "", labels_target(rec.get("emotions") or [])]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=BPE_VOCAB, special_tokens=CHAT_SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(texts, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                  additional_special_tokens=CHAT_SPECIALS[3:], clean_up_tokenization_spaces=False)
    tok.chat_template = CHATML_TEMPLATE
    return tok


def _write_llm(path: Path, seed: int, tok) -> None:
    from transformers import Qwen2Config, Qwen2ForCausalLM  # lazy: loads a model family; only the tiny LLM needs it

    torch.manual_seed(seed)
    vocab = QWEN2_TINY["vocab_size"] if len(tok) > BPE_VOCAB + 64 else -(-len(tok) // 64) * 64
    cfg = Qwen2Config(**{**QWEN2_TINY, "vocab_size": vocab}, bos_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = Qwen2ForCausalLM(cfg)
    model.save_pretrained(path)
    tok.save_pretrained(path)
