"""Command lines: Hydra overrides ``key=value`` checked by the schema (affectgpt/core/config.py), but a command's
*verbatim* keys (free text, paths) take all after the first ``=`` as written (Hydra's grammar cannot: ``subtitle=I
can't``, ``video=a,b.mp4``); ``--key value`` means ``key=value``. :func:`run` ends every command in one line."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from affectgpt.core import config, errors, runlock

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
_compose = functools.partial(config.compose, CONF_DIR)  # (name, overrides): conf/<name>.yaml; ValueError
TRAIN_VERBATIM = ("output_dir", "data.root", "data.train_manifest", "data.val_manifest", "data.test_manifest",
                  "data.feature_cache", "features.cache_dir", "trainer.resume", "trainer.deepspeed",
                  "model.tiny_assets", "model.llm.name_or_path", "model.llm.tokenizer", "model.vision.pretrained",
                  "model.audio.model", "wandb.name", "trainer.init_from", "model.vision.model", "trainer.grpo.wheels")


class UsageError(errors.InputError, ValueError):
    """A bad command line or input named by the user: one line on stderr, exit code 2."""


@dataclass(frozen=True)
class Command:
    prog: str                         # how the user starts it, for messages: "python infer.py"
    config: str                       # conf/<config>.yaml, whose schema is config.SCHEMAS[config]
    verbatim: tuple[str, ...]         # keys whose values are free text or paths, taken unchanged
    repeatable: tuple[str, ...] = ()  # verbatim keys that may be given several times (a list)
    doc: str = ""                     # what --help prints first (a key left ??? by the config must be given)

    def usage(self) -> str:
        return (f"{self.doc.strip()}\n\nusage: {self.prog} [key=value ...]   (options: conf/{self.config}.yaml)\nTaken"
                f" as written: {', '.join(k + '=' for k in self.verbatim)}\nOther values use Hydra's override syntax; "
                "lists: key=[a,b] or key=a,b.\n--cfg prints the composed config and exits.")


def compose(command: Command, argv: Sequence[str]):
    """The command's config with ``argv`` applied; a bad argument raises UsageError naming it."""
    from omegaconf import OmegaConf

    args, verbatim, values = [], {}, []
    for a in argv:  # --key value: key=value
        args.append(f"{args.pop()[2:]}={a}" if args and args[-1][:2] == "--" and "=" not in args[-1] else a)
    for arg in args:
        key, eq, value = arg.partition("=")
        if not eq and not arg.startswith("~"):
            raise UsageError(f"argument {arg!r}: expected key=value (see {command.prog} --help)")
        if key in command.repeatable:
            verbatim.setdefault(key, []).extend([value] if value else [])
        elif key in verbatim:
            raise UsageError(f"argument {arg!r}: {key}= is given twice")
        elif key in command.verbatim:
            verbatim.update({key: None if value == "null" else value} if value else {})
        else:
            values.append(arg)
    try:
        pairs = [(arg, config.parse_override(arg)) for arg in values]
        groups = [a for a, ov in pairs if (CONF_DIR / ov.key_or_group).is_dir()]
        base = _compose(command.config, groups) if len(groups) < len(pairs) else None
        final = config.checked_overrides(pairs, groups, base, CONF_DIR, command.config, command.prog)
        cfg = _compose(command.config, final)
    except ValueError as e:  # the schema refused a value: name the argument, what its key takes, its default
        raise UsageError(config.value_refusal(e, locals().get("pairs", []), locals().get("base")) or str(e)) from None
    for key, value in verbatim.items():
        if config.node(cfg, key) is None:
            raise UsageError(f"argument {key}=: unknown key {key!r} in conf/{command.config}.yaml")
        value = [config.literal(v) for v in value] if isinstance(value, list) else value
        OmegaConf.update(cfg, key, config.literal(value) if isinstance(value, str) else value, merge=False)
    for key in config.missing(cfg)[:1]:
        raise UsageError(f"missing argument {key}=... (see {command.prog} --help)")
    return cfg


def run(command: Command, program: Callable[..., int | None], argv: Sequence[str] | None = None) -> int:
    """``program(cfg)`` on ``argv`` (default ``sys.argv[1:]``): its exit code, or ``errors.report``'s one line.
    ``verbose=true|false`` (any command; default ``AFFECTGPT_VERBOSE``) shows tracebacks and library warnings."""
    args, before, verbose = list(sys.argv[1:] if argv is None else argv), os.environ.get("AFFECTGPT_VERBOSE"), False
    if "-h" in args or "--help" in args:
        return print(command.usage()) or 0
    try:
        flags = [a.partition("=")[2] for a in args if a.startswith("verbose=")] or [None]
        if flags[-1] not in (None, "true", "false"):
            raise UsageError(f"argument 'verbose={flags[-1]}': verbose expects true or false")
        verbose = errors.verbose() if flags[-1] is None else flags[-1] == "true"
        os.environ["AFFECTGPT_VERBOSE"] = "1" if verbose else "0"  # for child processes too
        rest, show = [a for a in args if not a.startswith("verbose=") and a != "--cfg"], "--cfg" in args
        errors.quiet_libraries(verbose)
        cfg = compose(command, rest)
        return print(__import__("omegaconf").OmegaConf.to_yaml(cfg), end="") or 0 if show else int(program(cfg) or 0)
    except BaseException as e:  # noqa: BLE001 -- every error ends as one line (SystemExit passes through)
        return errors.report(e, verbose)
    finally:  # a later command in this process starts from the user's setting and no lock of this one's
        runlock.release_all()
        os.environ.pop("AFFECTGPT_VERBOSE", None) if before is None else os.environ.update(AFFECTGPT_VERBOSE=before)
