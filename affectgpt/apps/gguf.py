"""``python -m affectgpt.apps.gguf FILE.gguf OUT_DIR``: a GGUF file as an ordinary Hugging Face folder
(the conversion: :mod:`affectgpt.model.gguf`)."""

from __future__ import annotations

import sys

from affectgpt.model.gguf import convert


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m affectgpt.apps.gguf FILE.gguf OUT_DIR", file=sys.stderr)
        return 2
    try:
        out = convert(args[0], args[1])
    except (FileNotFoundError, ImportError, ValueError, RuntimeError) as e:
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"error: {message if args[0] in message else f'{args[0]}: {message}'}", file=sys.stderr)
        return 2
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
