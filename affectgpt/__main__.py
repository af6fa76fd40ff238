"""``python -m affectgpt COMMAND [key=value ...]``: every command of affectgpt/apps by its name.

``python -m affectgpt`` (or ``--help``) lists them with their first docstring line, read without
importing anything heavy. ``python -m affectgpt bench ...`` is ``python -m affectgpt.apps.bench ...``;
``train``, ``infer`` and ``demo`` are the top-level scripts' commands.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import runpy
import sys
from pathlib import Path

import affectgpt.apps as apps

NOT_COMMANDS = {"cli"}  # the grammar every command shares, not a command
# Commands whose modules have no __main__ block: the top-level scripts run them as run(COMMAND, function).
SCRIPT_COMMANDS = {"train": ("TRAIN", "main"), "infer": ("INFER", "main"), "demo": ("DEMO", "serve")}


def commands() -> dict[str, str]:
    """Command name -> the first line of its module's docstring."""
    found = {}
    for info in sorted(pkgutil.iter_modules(apps.__path__), key=lambda m: m.name):
        if info.name in NOT_COMMANDS or info.name.startswith("_"):
            continue
        path = Path(apps.__path__[0]) / f"{info.name}.py"
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        found[info.name] = summary(doc)
    return found


def summary(doc: str) -> str:
    """The docstring's first sentence, without a leading ````command line``:`` or ``python -m ...``."""
    text = " ".join(doc.strip().split("\n\n")[0].split())
    if text.startswith("``") and "``: " in text:
        text = text.split("``: ", 1)[1]
    elif text.startswith("python -m ") and "]: " in text:
        text = text.split("]: ", 1)[1]
    text = text.split(". ")[0].split(" (")[0].split(": ``")[0].rstrip(".")
    return text[:1].upper() + text[1:]


def usage() -> str:
    listed = commands()
    width = max(map(len, listed))
    rows = "\n".join(f"  {name:<{width}}  {line}" for name, line in listed.items())
    return f"usage: python -m affectgpt COMMAND [key=value ...]   (COMMAND --help for its options)\n\ncommands:\n{rows}"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = args[0], args[1:]
    known = commands()
    if name not in known:
        print(f"error: unknown command {name!r}; commands: {', '.join(known)}", file=sys.stderr)
        return 2
    if name in SCRIPT_COMMANDS:
        from affectgpt.apps.cli import run

        module = importlib.import_module(f"affectgpt.apps.{name}")
        command, function = SCRIPT_COMMANDS[name]
        return run(getattr(module, command), getattr(module, function), rest)
    saved = sys.argv
    sys.argv = [f"python -m affectgpt {name}", *rest]
    try:
        runpy.run_module(f"affectgpt.apps.{name}", run_name="__main__", alter_sys=True)
    except SystemExit as e:  # the command's exit code; a message (sys.exit("...")) goes to stderr, code 1
        if e.code is None or isinstance(e.code, int):
            return e.code or 0
        print(e.code, file=sys.stderr)
        return 1
    finally:
        sys.argv = saved
    return 0


if __name__ == "__main__":
    sys.exit(main())
