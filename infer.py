"""Run AffectGPT on one clip or a whole manifest.

``python infer.py checkpoint=DIR video=FILE [subtitle="..."]`` prints one JSON object
``{"name", "description", "emotions", "task"}`` on stdout (logs on stderr).
``python infer.py checkpoint=DIR manifest=FILE output=OUT.jsonl`` writes one line per sample.
Bad input: exit code 2 and one line on stderr naming the file and the cause.
"""

import json
import logging
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        fail("device=cuda requested but no CUDA device is available")
    return name


@hydra.main(config_path="conf", config_name="infer", version_base="1.3")
def main(cfg: DictConfig) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from affectgpt.data.manifest import ManifestError, Sample, read_manifest
    from affectgpt.data.media import MediaError, load_media

    if (cfg.video is None) == (cfg.manifest is None):
        fail("give exactly one of video=FILE or manifest=FILE")
    if not (Path(cfg.checkpoint) / "config.yaml").is_file():
        fail(f"{cfg.checkpoint}: not a checkpoint folder (no config.yaml)")
    subtitle = cfg.subtitle or ""
    if cfg.subtitle_file:
        try:
            subtitle = Path(cfg.subtitle_file).read_text(encoding="utf-8").strip()
        except OSError as e:
            fail(f"{cfg.subtitle_file}: cannot read subtitle file ({e.strerror})")
    if cfg.video is not None:
        video = Path(cfg.video)
        audio = Path(cfg.audio) if cfg.audio else None
        try:  # decode before loading the model: bad input fails fast, with one line
            load_media(video, audio, n_frames=1)
        except MediaError as e:
            fail(str(e))
        samples = [Sample(name=video.stem, video=video, audio=audio, subtitle=subtitle)]
    else:
        if cfg.output is None:
            fail("manifest mode needs output=FILE")
        try:
            samples = read_manifest(cfg.manifest)
        except ManifestError as e:
            fail(str(e))

    from affectgpt.inference import load_checkpoint_model, predict

    try:
        model, _ = load_checkpoint_model(cfg.checkpoint, device=resolve_device(cfg.device), dtype=cfg.dtype)
    except (FileNotFoundError, RuntimeError, ValueError) as e:
        fail(f"{cfg.checkpoint}: {e}")
    gen = dict(max_new_tokens=cfg.max_new_tokens, do_sample=cfg.do_sample, temperature=cfg.temperature,
               top_p=cfg.top_p, num_beams=cfg.num_beams)
    rows = predict(model, samples, task=cfg.task, batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                   progress=cfg.manifest is not None, **gen)
    if cfg.video is not None:
        row = rows[0]
        if row.get("error"):
            fail(row["error"])
        print(json.dumps({"name": row["name"], "description": row["description"], "emotions": row["emotions"],
                          "task": row["task"]}, ensure_ascii=False))
        return
    out = Path(cfg.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} predictions ({sum(1 for r in rows if r.get('error'))} errors) to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
