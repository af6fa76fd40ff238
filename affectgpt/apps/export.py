"""``python -m affectgpt.export checkpoint=DIR output=DIR [merge=true|false] [dtype=...]``: a training
checkpoint as an adapter bundle or a merged export (the format and the writer: :mod:`affectgpt.runtime.export`).
Options: conf/export.yaml."""

from __future__ import annotations

import sys
from pathlib import Path

from affectgpt.apps.cli import Command, UsageError, run
from affectgpt.runtime import export as writer

EXPORT = Command(prog="python -m affectgpt.export", config="export", doc=writer.__doc__.split("\n\n")[0],
                 verbatim=("checkpoint", "output"))


def main(argv: list[str] | None = None) -> int:
    """CLI; exit 2 with one stderr line on bad arguments or an unusable checkpoint."""
    return run(EXPORT, _export_command, argv)


def _export_command(cfg) -> int:
    if cfg.dtype is not None and cfg.dtype not in ("float32", "bfloat16", "float16"):
        raise UsageError(f"dtype={cfg.dtype}: expected float32, bfloat16 or float16 (or null for the checkpoint's)")
    if not (Path(cfg.checkpoint) / "config.yaml").is_file():
        raise UsageError(f"{cfg.checkpoint}: not a training checkpoint (no config.yaml)")
    try:
        out = writer.export(cfg.checkpoint, cfg.output, merge=bool(cfg.merge), dtype=cfg.dtype,
                            trust_remote_code=bool(cfg.trust_remote_code))
    except (FileNotFoundError, FileExistsError, ValueError, RuntimeError) as e:
        raise UsageError(str(e)) from None
    kind = "merged model" if cfg.merge else "adapter bundle"
    print(f"wrote {kind} to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
