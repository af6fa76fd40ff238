"""``python -m affectgpt.apps.faces input=VIDEO|DIR|MANIFEST output=ROOT [workers=N]``: face crops
in the layout of the MER releases (the cropper and its format: :mod:`affectgpt.data.faces`)."""

from __future__ import annotations

import sys
from pathlib import Path

from affectgpt.apps.cli import Command, UsageError
from affectgpt.apps.cli import run as run_command
from affectgpt.data import faces

FACES = Command(prog="python -m affectgpt.apps.faces", config="faces", doc=faces.__doc__,
                verbatim=("input", "output"))


def main(argv: list[str] | None = None) -> int:
    return run_command(FACES, _faces_command, argv)


def _faces_command(cfg) -> int:
    if int(cfg.workers) < 1:
        raise UsageError(f"workers={cfg.workers}: expected an integer >= 1")
    if cfg.fps is not None and not float(cfg.fps) > 0:
        raise UsageError(f"fps={cfg.fps}: expected a number > 0, or null for every frame")
    try:
        clips = faces.list_clips(cfg.input)
    except ValueError as e:
        raise UsageError(str(e)) from None
    try:
        counts = faces.run(clips, Path(cfg.output), int(cfg.workers), cfg.fps and float(cfg.fps), int(cfg.size),
                           bool(cfg.mask), int(cfg.detect_size))
    except faces.FaceModelError as e:
        raise UsageError(str(e)) from None
    print(faces.summary(counts, Path(cfg.output)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
