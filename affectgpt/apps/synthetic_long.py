"""``python -m affectgpt.apps.synthetic_long output=long.mp4 [clips=12] [minutes=null] [seed=0]``: a long
video of synthetic clips separated by silences, with ``OUTPUT.truth.jsonl`` (the generator:
:mod:`affectgpt.data.synthetic_long`)."""

from __future__ import annotations

import sys

from affectgpt.data.synthetic_long import clips_for_minutes, write_long_video


def main(argv: list[str] | None = None) -> int:
    args = dict(a.split("=", 1) for a in (sys.argv[1:] if argv is None else argv) if "=" in a)
    if "output" not in args:
        print("usage: python -m affectgpt.apps.synthetic_long output=FILE.mp4 [clips=12 | minutes=M] [seed=0]",
              file=sys.stderr)
        return 2
    clips = clips_for_minutes(float(args["minutes"])) if "minutes" in args else int(args.get("clips", 12))
    try:
        truth = write_long_video(args["output"], clips=clips, seed=int(args.get("seed", 0)))
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{args['output']}: {len(truth)} clips, {truth[-1]['end']:.1f} s; truth -> {args['output']}.truth.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
