"""A local web page for single-clip inference (Gradio; ``pip install -e ".[demo]"``).

``python demo.py checkpoint=DIR [host=127.0.0.1 port=7860]`` loads the model once and serves a
page: upload a video (and optionally a separate audio file), type the subtitle, choose the task
and the generation settings; the page shows the sampled frames, the description with its clue
sentences marked by modality, the emotion list with each word's emotion-wheel categories and
the timing. Requests run one at a time in a queue. Inputs go through infer.py's own checks, so a
bad file shows the one-line cause the command line prints, and the page keeps working.
Options: conf/demo.yaml.
"""

from __future__ import annotations

import html
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from affectgpt.apps import infer
from affectgpt.apps.bench import checkpoint_visual
from affectgpt.apps.cli import Command, UsageError, run
from affectgpt.data.faces import crop_clip
from affectgpt.data.media import MediaError, load_media
from affectgpt.eval import builtin_lexicon
from affectgpt.eval.clues import split_clues
from affectgpt.eval.parsing import normalize_label
from affectgpt.runtime.asr import AsrConfig, encoder_checkpoint_of, transcribe_samples

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a local demo
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
MODALITY_COLORS = {"visual": "#7fb3ff", "acoustic": "#ffb36b", "textual": "#9be39b", "audio-visual": "#d7a6ff",
                   "conclusion": "#e0e0e0"}
# words that tie a clue sentence to the stream it describes (EMER-style descriptions)
_VISUAL = re.compile(r"\b(face|faces|facial|brows?|eyes?|mouth|lips|smil\w*|frown\w*|gaze|look(s|ed|ing)?|"
                     r"expression|gestures?|posture|tears?|frames?|appearance|cheeks?|head)\b")
_ACOUSTIC = re.compile(r"\b(voice|voices|vocal|pitch\w*|speaker|speaks|speaking|talks?|tone of voice|"
                       r"syllables?|intonation|loud\w*|soft(ly)?|sound\w*|audio|accent|rhythm|pace)\b")
_TEXTUAL = re.compile(r"\b(subtitles?|says|said|words?|sentence|text|statement|utterance)\b")
_SENTENCE = re.compile(r"(?<=[.!?;])\s+")


DEMO = Command(prog="python demo.py", config="demo", doc=__doc__, verbatim=("checkpoint",))


def fail(message: str):
    """Bad arguments or an unusable checkpoint: exit code 2 with this one line."""
    raise UsageError(message)


def check_args(cfg):
    if not 0 < cfg.port < 65536:
        fail(f"port={cfg.port}: expected an integer in 1..65535")
    return cfg


# ----------------------------------------------------------------------------- page content
def clue_modality(sentence: str) -> str | None:
    """Which stream a description sentence draws on: visual, acoustic, textual, audio-visual
    (a clue that needs both), conclusion (the emotion list) or None (no stream named)."""
    low = sentence.lower()
    if not split_clues(sentence):
        return "conclusion"
    if _TEXTUAL.search(low):
        return "textual"  # a subtitle sentence often mentions the face and voice it is weighed against
    visual, acoustic = bool(_VISUAL.search(low)), bool(_ACOUSTIC.search(low))
    if visual and acoustic:
        return "audio-visual"
    return "visual" if visual else "acoustic" if acoustic else None


def marked_description(text: str) -> list[tuple[str, str | None]]:
    """The description as (sentence, modality) spans for ``gr.HighlightedText``; joins back to ``text``."""
    parts = _SENTENCE.split(text.strip())
    return [(p + (" " if i < len(parts) - 1 else ""), clue_modality(p)) for i, p in enumerate(parts) if p]


def wheel_rows(emotions: list[str]) -> tuple[list[str], list[list[str]]]:
    """Header and one row per emotion word: its base form, its wheel word and, per emotion wheel
    of the built-in lexicon, the level-1 and level-2 categories ('' where the wheel lacks it)."""
    lexicon = builtin_lexicon()
    header = ["emotion", "base form", "wheel word"] + [f"{w.name} (L1 / L2)" for w in lexicon.wheels]
    rows = []
    for word in emotions:
        groups = lexicon.groups(normalize_label(word))
        if groups[0] is None:
            rows.append([word, "not in the lexicon"] + [""] * (len(header) - 2))
            continue
        cells = [word, groups[0], groups[1] or ""]
        for k in range(len(lexicon.wheels)):
            l1, l2 = groups[2 + 2 * k], groups[3 + 2 * k]
            cells.append(" / ".join(x for x in (l1, l2) if x))
        rows.append(cells)
    return header, rows


def emotions_html(emotions: list[str]) -> str:
    if not emotions:
        return "<p id='no-emotions'>No emotion list found in the answer.</p>"
    header, rows = wheel_rows(emotions)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table class='emotions'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def timing_markdown(timing: dict, total_s: float) -> str:
    t = timing
    rows = [("decode", t.get("decode_s", 0), "media decode + frame resize"),
            ("prompt", t.get("prompt_s", 0), f"chat template + tokenize ({t.get('prompt_tokens', 0)} tokens)"),
            ("encode", t.get("encode_s", 0), "frozen vision + audio encoders"),
            ("prefill", t.get("prefill_s", 0), "adapters + prompt pass -> first token"),
            ("generate", t.get("generate_s", 0), f"{t.get('tokens', 0)} tokens, "
                                                 f"{t.get('tokens_per_s', 0):.1f} tokens/s after the first"),
            ("total", total_s, "this request")]
    return "| step | seconds | what |\n|---|---:|---|\n" + "\n".join(f"| {a} | {b:.3f} | {c} |" for a, b, c in rows)


# ----------------------------------------------------------------------------- requests
class InputError(Exception):
    """A request the CLI would refuse with exit 2; the message is its one line, without 'error: '."""


def cli_check(check, *args):
    """Run one of infer.py's checks; the line it would exit 2 with becomes an InputError with that text."""
    try:
        return check(*args)
    except UsageError as e:
        raise InputError(str(e)) from None


@dataclass
class Session:
    """The model, loaded once, and what the page needs to run it."""

    loaded: object
    seed: int
    where: str
    visual: str = "frames"  # faces: uploads have no face file, so their faces are cropped on the fly


def run_request(session: Session, video: str | None, audio: str | None, subtitle: str, task: str,
                gen_form: dict) -> dict:
    """One clip through infer.py's checks and the inference library. Returns ``frames`` (uint8
    [H,W,3] list), ``description``, ``emotions``, ``timing`` and ``seconds``; InputError on bad input."""
    import torch  # lazy: the command stays torch-free until it needs the model

    from affectgpt.runtime.inference import predict_one  # lazy: the command stays torch-free until it needs the model

    t0 = time.perf_counter()
    cfg = OmegaConf.create({"task": task, "dtype": None, "video": video, "audio": audio, "manifest": None,
                            "subtitle": subtitle or "", "subtitle_file": None, "output": None, **gen_form})
    sample = cli_check(infer.check_inputs, cfg)[0]
    gen = cli_check(infer.generation_settings, cfg, session.loaded.generation)
    model = session.loaded.model
    if (subtitle or "").strip() == "auto":  # subtitle by speech recognition, as infer.py subtitle=auto
        try:
            sample = transcribe_samples([sample], AsrConfig(device=str(model.device)), encoder_checkpoint_of(model))[0]
        except (OSError, ValueError) as e:
            raise InputError(f"subtitle=auto: {e}") from None
    plan = model.token_plan()
    frames = []
    if video and plan.has_vision and session.visual == "faces":
        try:  # the face crops the model sees (stored BGR, shown RGB)
            frames = [f[..., ::-1] for f in crop_clip(video, plan.frames)]
        except MediaError as e:
            raise InputError(str(e)) from None
    elif video and plan.has_vision:
        try:  # the frames the model sees, before its resize
            media = load_media(video, audio, n_frames=plan.frames, max_audio_seconds=1.0)
        except MediaError as e:
            raise InputError(str(e)) from None
        frames = list(media.frames) if media.has_video else []
    torch.manual_seed(session.seed)
    row, timing = predict_one(model, sample, task, gen, system=session.loaded.system, profile=True,
                              visual=session.visual)
    if row.get("error"):
        raise InputError(row["error"])
    return {"frames": frames, "description": row["description"], "emotions": row["emotions"], "timing": timing,
            "seconds": time.perf_counter() - t0, "asr": sample.extra.get("asr")}


def _shown_path(message: str, paths: list[str | None]) -> str:
    """Uploads live under a temporary folder; the page names them by their file name."""
    for p in paths:
        if p:
            message = message.replace(str(p), Path(p).name)
    return message


def build_app(session: Session):
    """The Blocks page; ``answer`` never raises: a bad request fills the status line and clears the rest."""
    import gradio as gr  # optional: the [demo] extra

    def answer(video, audio, subtitle, task, max_new_tokens, do_sample, temperature, top_p, num_beams):
        gen_form = {"max_new_tokens": int(max_new_tokens), "do_sample": bool(do_sample),
                    "temperature": float(temperature), "top_p": float(top_p), "num_beams": int(num_beams)}
        try:
            out = run_request(session, video, audio, subtitle, task, gen_form)
        except InputError as e:
            return [], [], "", "", f"error: {_shown_path(str(e), [video, audio])}"
        n = len(out["frames"])
        gallery = [(f, f"frame {i + 1}/{n}") for i, f in enumerate(out["frames"])]
        status = f"done in {out['seconds']:.2f} s ({session.where})"
        if out.get("asr"):
            status += f"; subtitle by speech recognition: {out['asr']['subtitle'] or '(' + out['asr']['asr'] + ')'}"
        return (gallery, marked_description(out["description"]), emotions_html(out["emotions"]),
                timing_markdown(out["timing"], out["seconds"]), status)

    gen = {"max_new_tokens": 256, "do_sample": False, "temperature": 1.0, "top_p": 1.0, "num_beams": 1}
    gen.update({k: v for k, v in session.loaded.generation.items() if k in gen})
    with gr.Blocks(title="AffectGPT demo") as app:
        gr.Markdown("## AffectGPT: explainable multimodal emotion recognition\nUpload a clip, type its subtitle, "
                    "and read the clues and emotions the model finds.")
        with gr.Row():
            with gr.Column(scale=2):
                video = gr.Video(label="video clip", sources=["upload"], format=None, elem_id="video")
                audio = gr.Audio(label="separate audio (optional; replaces the video's track)", sources=["upload"],
                                 type="filepath", elem_id="audio")
                subtitle = gr.Textbox(label="subtitle", lines=2, elem_id="subtitle")
                task = gr.Radio(["describe", "labels"], value="describe", label="task", elem_id="task")
                with gr.Accordion("generation", open=False):
                    max_new = gr.Number(gen["max_new_tokens"], label="max new tokens", precision=0, minimum=1,
                                        elem_id="max_new_tokens")
                    do_sample = gr.Checkbox(bool(gen["do_sample"]), label="sample (off: greedy)")
                    temperature = gr.Number(gen["temperature"], label="temperature (sampling only)")
                    top_p = gr.Number(gen["top_p"], label="top p (sampling only)")
                    beams = gr.Number(gen["num_beams"], label="beams", precision=0, minimum=1)
                run = gr.Button("Run", variant="primary", elem_id="run")
            with gr.Column(scale=3):
                status = gr.Markdown("ready", elem_id="status")
                frames = gr.Gallery(
                    label="sampled frames", columns=4, height=280, object_fit="contain", elem_id="frames"
                )
                description = gr.HighlightedText(label="description (clue sentences by modality)",
                                                 color_map=MODALITY_COLORS, show_legend=True,
                                                 show_inline_category=False, elem_id="description")
                emotions = gr.HTML(label="emotions and their wheel categories", elem_id="emotions")
                timing = gr.Markdown(elem_id="timing")
        run.click(answer, [video, audio, subtitle, task, max_new, do_sample, temperature, top_p, beams],
                  [frames, description, emotions, timing, status], concurrency_limit=1)
    return app


def main(argv: list[str] | None = None) -> int:
    return run(DEMO, serve, argv)


def serve(cfg) -> None:
    check_args(cfg)
    try:
        import gradio as gr  # optional: the [demo] extra
    except ImportError:
        fail('the demo needs gradio: pip install -e ".[demo]"')
    opened = infer.open_checkpoint(cfg)
    loaded, device = opened.loaded, opened.device
    where = f"{loaded.kind}, {device}"
    print(f"demo: loaded {cfg.checkpoint} ({where}) in {opened.seconds:.1f} s", file=sys.stderr)
    if str(cfg.host) not in LOCAL_HOSTS:
        print(f"warning: listening on {cfg.host}:{cfg.port}: anyone who can reach this address can upload files "
              "and run the model; there is no login", file=sys.stderr)
    visual = cfg.visual or checkpoint_visual(Path(cfg.checkpoint))
    if visual not in ("frames", "faces"):
        fail(f"visual={visual}: expected frames or faces (or null for the checkpoint's)")
    if visual == "faces":
        print("demo: visual=faces: every upload's faces are cropped on the fly with dlib (the page shows the crops)",
              file=sys.stderr)
    app = build_app(Session(loaded, int(cfg.seed), where, visual))
    app.queue(max_size=int(cfg.max_queue), default_concurrency_limit=1)
    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],  # no web-font downloads
                              font_mono=["ui-monospace", "monospace"])
    app.launch(server_name=str(cfg.host), server_port=int(cfg.port), share=False, ssr_mode=False,
               max_file_size=f"{int(cfg.max_file_mb)}mb", theme=theme, footer_links=[])

