"""Speech recognition from the command line (the models and the rules: :mod:`affectgpt.runtime.asr`).

    python -m affectgpt.apps.asr convert input=CT2_DIR output=FILE.pt
    python -m affectgpt.apps.asr transcribe input=MEDIA [model=auto] [language=en]

``convert`` writes the openai-whisper checkpoint of a CTranslate2 folder once (then usable as
``asr.model`` or as ``model.audio.model``); ``transcribe`` prints one clip's transcript as JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from affectgpt.data.media import MediaError, load_media
from affectgpt.runtime.asr import AsrConfig, ctranslate2_to_whisper, load_asr_model, resolve_asr_model, transcribe


def main(argv: list[str] | None = None) -> int:
    """``convert input=CT2_DIR output=FILE.pt`` | ``transcribe input=MEDIA [asr.model=...]``."""
    args = dict(a.split("=", 1) for a in (sys.argv[1:] if argv is None else argv)[1:] if "=" in a)
    action = (sys.argv[1:] if argv is None else argv)[:1]
    usage = ("usage: python -m affectgpt.apps.asr convert input=CT2_DIR output=FILE.pt\n"
             "       python -m affectgpt.apps.asr transcribe input=MEDIA [model=auto] [language=en]")
    if action == ["convert"] and {"input", "output"} <= set(args):
        out = Path(args["output"])
        if out.exists():
            print(f"error: {out}: exists; choose a new output path", file=sys.stderr)
            return 2
        try:
            ckpt = ctranslate2_to_whisper(args["input"])
        except (OSError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(ckpt, out)
        print(f"{args['input']} -> {out} (dims {json.dumps(ckpt['dims'])})")
        return 0
    if action == ["transcribe"] and "input" in args:
        cfg = AsrConfig(model=args.get("model", "auto"), language=args.get("language"))
        try:
            audio = load_media(None, args["input"], n_frames=1).audio
            model = load_asr_model(resolve_asr_model(cfg.model))
        except (MediaError, OSError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(json.dumps(transcribe(model, audio, cfg).fields(), ensure_ascii=False))
        return 0
    print(usage, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
