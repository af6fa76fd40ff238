"""Run AffectGPT on one clip or a whole manifest.

``python infer.py checkpoint=DIR video=FILE [subtitle="..."]`` prints one JSON object
``{"name", "description", "emotions", "task"}`` on stdout (logs on stderr).
``python infer.py checkpoint=DIR manifest=FILE output=OUT.jsonl`` appends one line per sample not
yet in OUT (resumable). ``checkpoint`` is a training checkpoint or an export. Options: conf/infer.yaml.
``subtitle=auto`` transcribes each clip's audio (Whisper; ``asr.*``) and puts the transcript in the
output (``subtitle``, ``subtitle_source``, ``asr``). ``video=LONG.mp4 timeline=true output=T.jsonl``
writes one row per utterance segment (``start``, ``end``, ``subtitle``, ``description``, ``emotions``)
and the plot T.png (``affectgpt.runtime.timeline``; docs/asr-timeline.md).
Bad input: exit code 2 and one line on stderr naming the file and the cause; inputs are checked
before the model loads.
"""

import json
import logging
import os
import sys
import time
from pathlib import Path

from omegaconf import DictConfig

from affectgpt.apps.bench import checkpoint_visual
from affectgpt.apps.cli import Command, UsageError
from affectgpt.core.fileio import writing
from affectgpt.core.plan import DEFAULT_GENERATION, GENERATION_PRESETS
from affectgpt.core.predictions import check_predictions
from affectgpt.core.runlock import FolderLocked, acquire
from affectgpt.data.faces import on_the_fly_note, without_face_file
from affectgpt.data.manifest import ManifestError, Sample, read_manifest
from affectgpt.data.media import MediaError, load_media
from affectgpt.eval.cli import format_table
from affectgpt.runtime.asr import asr_config, encoder_checkpoint_of, transcribe_samples
from affectgpt.runtime.timeline import (
    plot_path,
    plot_timeline,
    read_rows,
    segment_config,
    segment_samples,
    segments_path,
)

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
INFER = Command(prog="python infer.py", config="infer", doc=__doc__,
                verbatim=("checkpoint", "video", "audio", "subtitle", "subtitle_file", "manifest", "output",
                          "score_output"))


def fail(message: str):
    """Bad input: exit code 2 with this one line (raised, so the caller's cleanup runs)."""
    raise UsageError(message)


def generation_settings(cfg: DictConfig, defaults: dict) -> dict:
    """Command line over the ``decoding`` preset over the artifact's defaults over greedy/256;
    sampling knobs need do_sample."""
    gen = dict(DEFAULT_GENERATION)
    gen.update({k: v for k, v in defaults.items() if k in gen})
    preset = cfg.get("decoding")
    if preset is not None:
        gen.update(GENERATION_PRESETS[preset])
    gen.update({k: cfg[k] for k in gen if cfg.get(k) is not None})
    if not gen["do_sample"]:
        for k, neutral in (("temperature", 1.0), ("top_p", 1.0), ("top_k", None)):
            if cfg.get(k) is not None and float(cfg[k]) != neutral:
                fail(f"{k}={cfg[k]} has no effect with greedy decoding; add do_sample=true")
    if int(gen["max_new_tokens"]) < 1 or int(gen["num_beams"]) < 1:
        fail(f"max_new_tokens and num_beams must be >= 1, got {gen['max_new_tokens']} and {gen['num_beams']}")
    if gen["do_sample"] and not (float(gen["temperature"]) > 0 and 0 < float(gen["top_p"]) <= 1):
        fail(f"temperature must be > 0 and top_p in (0, 1], got {gen['temperature']} and {gen['top_p']}")
    return gen


def check_inputs(cfg: DictConfig):
    """Everything that can be checked without the model; returns (samples, subtitle)."""
    # task, visual, dtype, decoding: checked by the schema (InferConfig) when the command line is composed
    single = cfg.video is not None or (cfg.audio is not None and cfg.manifest is None)
    if single == (cfg.manifest is not None):
        fail("give exactly one of video=FILE (audio=FILE alone also works) or manifest=FILE")
    if cfg.get("timeline") and (not single or cfg.output is None):
        fail("timeline=true needs video=FILE (or audio=FILE) and output=FILE.jsonl")
    if cfg.get("timeline") and (cfg.subtitle not in ("", "auto", None) or cfg.subtitle_file):
        fail("timeline=true: a subtitle for the whole video does not fit its segments; use subtitle=auto or none")
    subtitle = cfg.subtitle or ""
    if cfg.subtitle_file:
        try:
            subtitle = Path(cfg.subtitle_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            fail(f"{cfg.subtitle_file}: cannot read subtitle file ({getattr(e, 'strerror', None) or e})")
    if single:
        video = Path(cfg.video) if cfg.video else None
        audio = Path(cfg.audio) if cfg.audio else None
        try:  # decode before loading the model: bad input fails fast, with one line
            load_media(video, audio, n_frames=1, max_audio_seconds=1.0)
        except MediaError as e:
            fail(str(e))
        return [Sample(name=(video or audio).stem, video=video, audio=audio, subtitle=subtitle)]
    if cfg.output is None:
        fail("manifest mode needs output=FILE")
    try:
        return read_manifest(cfg.manifest)
    except ManifestError as e:
        fail(str(e))
    except OSError as e:
        fail(f"{cfg.manifest}: cannot read manifest ({e.strerror or e})")


def resolve_visual(cfg: DictConfig, samples) -> str:
    """visual= or the checkpoint's data.visual; with faces, says on stderr which clips are cropped on the fly."""
    visual = cfg.get("visual") or checkpoint_visual(Path(cfg.checkpoint))
    if visual == "faces":
        if missing := without_face_file(samples):
            print(on_the_fly_note(missing, len(samples)), file=sys.stderr)
    return visual


def prepare_samples(cfg: DictConfig, samples: list, model, device: str) -> list:
    """Timeline mode: the video's utterance segments; ``subtitle=auto``: every clip's transcript as its subtitle."""
    try:
        asr = asr_config(cfg.get("asr"))
    except (ValueError, TypeError) as e:
        fail(str(e))
    asr.device = device

    def transcribe(todo: list) -> list:
        try:
            return transcribe_samples(todo, asr, encoder_checkpoint_of(model), progress=len(todo) > 1)
        except (OSError, ValueError) as e:
            fail(f"subtitle=auto: {e}")

    auto = cfg.subtitle == "auto"
    if cfg.get("timeline"):
        try:
            samples, reused = segment_samples(Path(cfg.video) if cfg.video else None,
                                              Path(cfg.audio) if cfg.audio else None, Path(cfg.output),
                                              segment_config(cfg.get("segment")), transcribe if auto else None)
        except (ValueError, ManifestError, MediaError) as e:
            fail(str(e))
        where = "read back from" if reused else "written to"
        print(f"{len(samples)} segments ({where} {segments_path(cfg.output)})", file=sys.stderr)
        return samples
    if not auto:
        return samples
    if cfg.manifest is not None:  # resuming: transcribe only the clips still to run
        from affectgpt.runtime.inference import read_done  # lazy: the command stays torch-free until it needs the model

        try:
            done = {r["name"] for r in read_done(Path(cfg.output))}
        except ValueError as e:  # an unreadable OUT to resume from
            fail(str(e))
        todo = transcribe([s for s in samples if s.name not in done])
        return [s for s in samples if s.name in done] + todo
    return transcribe(samples)


def print_profile(timing: dict, load_s: float, total_s: float, where: str) -> None:
    t = timing
    lines = [
        f"profile ({where})",
        f"  load      {load_s:8.3f} s",
        f"  decode    {t.get('decode_s', 0):8.3f} s   media decode + frame resize",
        f"  prompt    {t.get('prompt_s', 0):8.3f} s   chat template + tokenize ({t.get('prompt_tokens', 0)} tokens)",
        f"  encode    {t.get('encode_s', 0):8.3f} s   frozen vision + audio encoders",
        f"  prefill   {t.get('prefill_s', 0):8.3f} s   adapters + prompt pass -> first token",
        f"  generate  {t.get('generate_s', 0):8.3f} s   {t.get('tokens', 0)} tokens, "
        f"{t.get('tokens_per_s', 0):.1f} tokens/s after the first",
        f"  total     {total_s:8.3f} s",
    ]
    print("\n".join(lines), file=sys.stderr)


def open_checkpoint(cfg: DictConfig):
    """``open_artifact`` on an app's options (checkpoint, device, dtype, merge_lora, trust_remote_code,
    verify_hashes); a checkpoint that cannot be opened is bad input (exit 2, one line)."""
    from affectgpt.runtime.open import (  # lazy: the command stays torch-free until it needs the model
        ArtifactError,
        open_artifact,
    )

    try:
        return open_artifact(cfg.checkpoint, device=str(cfg.device), dtype=cfg.dtype, merge_lora=cfg.merge_lora,
                             trust_remote_code=bool(cfg.trust_remote_code), verify_hashes=bool(cfg.verify_hashes))
    except ArtifactError as e:
        fail(str(e))


def main(cfg: DictConfig) -> None:
    t_start = time.perf_counter()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    samples = check_inputs(cfg)  # media first: a bad clip fails in a second, before torch is imported
    generation_settings(cfg, {})  # bad generation options fail before the model loads
    if cfg.manifest is not None:  # OUT must be this program's own file before anything touches it; one job on it
        try:
            check_predictions(Path(cfg.output), (Path(cfg.manifest),))
            acquire(cfg.output, "python infer.py", is_file=True)
        except (ValueError, FolderLocked) as e:
            fail(str(e))
    opened = open_checkpoint(cfg)

    import torch  # lazy: the command stays torch-free until it needs the model

    from affectgpt.runtime.inference import (  # lazy: the command stays torch-free until it needs the model
        predict_one,
        run_manifest,
        score_manifest,
    )

    loaded, device = opened.loaded, opened.device
    load_s = opened.seconds
    gen = generation_settings(cfg, loaded.generation)
    torch.manual_seed(int(cfg.seed))
    model = loaded.model
    samples = prepare_samples(cfg, samples, model, device)
    visual = resolve_visual(cfg, samples)

    if cfg.manifest is None and not cfg.get("timeline"):
        decode = str(cfg.get("decode", "plain"))
        try:
            from affectgpt.runtime.decoding import (  # lazy: the command stays torch-free until it needs the model
                check_mode,
                fast_path_reason,
            )

            check_mode(decode, model.device)
        except ValueError as e:
            fail(str(e))
        why = fast_path_reason({"input_ids": [None]}, gen) if decode != "plain" else None
        if why:
            fail(f"decode={decode}: {why}")
        row, timing = predict_one(model, samples[0], cfg.task, gen, system=loaded.system, profile=bool(cfg.profile),
                                  decode=decode, visual=visual)
        if row.get("error"):
            fail(row["error"])
        if cfg.show_prompt:
            print("prompt " + json.dumps(timing["prompt_text"], ensure_ascii=False), file=sys.stderr)
        if cfg.profile:
            where = f"{loaded.kind}, {device}, {next(model.llm.parameters()).dtype}".replace("torch.", "")
            print_profile(timing, load_s, time.perf_counter() - t_start, where)
        from affectgpt.runtime.inference import sample_fields  # lazy: torch-free until the model is needed

        obj = {k: row[k] for k in ("name", "description", "emotions", "task")}
        print(json.dumps({**obj, **sample_fields(samples[0])}, ensure_ascii=False))
        return

    out = Path(cfg.output)
    try:
        with writing(out):  # a full disk: "no space left on device: OUT"
            counts = run_manifest(model, samples, out, cfg.task, gen, batch_size=int(cfg.batch_size),
                                  num_workers=int(cfg.num_workers), system=loaded.system, progress=True,
                                  inputs=tuple(Path(m) for m in (cfg.manifest,) if m), visual=visual)
    except ValueError as e:  # an unreadable OUT to resume from
        fail(str(e))
    rate = counts["written"] / counts["seconds"] if counts["seconds"] > 0 else 0.0
    print(f"wrote {counts['written']} rows ({counts['errors']} errors, {counts['skipped']} already in {out}) "
          f"in {counts['seconds']:.1f} s, {rate:.2f} clips/s", file=sys.stderr)
    if cfg.get("timeline"):
        png = plot_timeline(read_rows(out), plot_path(out), title=f"{Path(cfg.video or cfg.audio).name}: emotions")
        print(f"timeline plot -> {png}", file=sys.stderr)
        return
    if cfg.score:
        try:
            metrics = score_manifest(out, samples, str(cfg.manifest))
        except ValueError as e:
            fail(str(e))
        dest = Path(cfg.score_output) if cfg.score_output else out.with_suffix(".metrics.json")
        dest.write_text(json.dumps(metrics, indent=1) + "\n")
        print(format_table(metrics) + f"\nmetrics -> {dest}", file=sys.stderr)

