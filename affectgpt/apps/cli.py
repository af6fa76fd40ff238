"""Command lines of the apps (train.py, infer.py, export, features, check, ...): Hydra overrides
``key=value``, except that free text and paths reach the program exactly as the shell passed them.

Hydra's override grammar cannot carry real subtitles or file names (``subtitle=I can't`` fails to
parse, ``video=a,b.mp4`` becomes a sweep), so each command names its *verbatim* keys: an argument
``key=...`` with such a key is taken whole, everything after the first ``=``, and set after
composition; every other argument goes to Hydra. Bad arguments raise :class:`UsageError`.

:func:`run` is where every command ends: any error becomes one ``error: ...`` line on stderr and
exit code 2 (bad input) or 1 (the run failed), as ``affectgpt.core.errors`` maps it. ``verbose=true``
(any command, or ``AFFECTGPT_VERBOSE=1``) adds the traceback and lets the libraries' warnings and
progress bars through; without it they are off, so a failing run's stderr is the error line.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from affectgpt.core import errors

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
# The paths of conf/train.yaml, shared by every command that composes it (train.py, features, summary).
TRAIN_VERBATIM = ("output_dir", "data.root", "data.train_manifest", "data.val_manifest", "data.test_manifest",
                  "data.feature_cache", "features.cache_dir", "trainer.resume", "trainer.deepspeed",
                  "model.tiny_assets", "model.llm.name_or_path", "model.llm.tokenizer", "model.vision.pretrained",
                  "model.audio.model", "wandb.name", "trainer.init_from", "model.vision.model", "trainer.grpo.wheels")


class UsageError(errors.InputError, ValueError):
    """A bad command line or input named by the user: one line on stderr, exit code 2."""


@dataclass(frozen=True)
class Command:
    prog: str                               # how the user starts it, for messages: "python infer.py"
    config: str                             # conf/<config>.yaml
    verbatim: tuple[str, ...]               # keys whose values are free text or paths, taken unchanged
    repeatable: tuple[str, ...] = ()        # verbatim keys that may be given several times (a list)
    doc: str = ""                           # what --help prints first
    required: tuple[str, ...] = field(default=())  # keys whose ??? default must be overridden

    def usage(self) -> str:
        keys = ", ".join(f"{k}=" for k in self.verbatim)
        return (f"{self.doc.strip()}\n\nusage: {self.prog} [key=value ...]   (options: conf/{self.config}.yaml)\n"
                f"Taken as written, whatever they contain: {keys}\n"
                f"Other values use Hydra's override syntax; lists: key=[a,b] or key=a,b.\n"
                f"--cfg prints the composed config and exits.")


def escape_interpolation(value: str) -> str:
    """``value`` as an OmegaConf string that reads back as ``value`` (``${`` is not interpolated)."""
    return re.sub(r"(\\*)\$\{", lambda m: m.group(1) * 2 + "\\${", value)


def split_arguments(argv: Sequence[str], command: Command) -> tuple[dict[str, str | list[str]], list[str]]:
    """Separate the verbatim ``key=value`` arguments from the Hydra overrides.

    An empty verbatim value (``video=``) means the key's default; ``null`` means None (unset), as in
    Hydra. A verbatim key given twice is an error unless it is repeatable.
    """
    verbatim: dict[str, str | list[str] | None] = {}
    overrides: list[str] = []
    for arg in argv:
        key, eq, value = arg.partition("=")
        if not eq and not arg.startswith("~"):
            raise UsageError(f"argument {arg!r}: expected key=value (see {command.prog} --help)")
        if key not in command.verbatim:
            overrides.append(arg)
            continue
        if key in command.repeatable:
            if value:
                verbatim.setdefault(key, []).append(value)  # type: ignore[union-attr]
            continue
        if key in verbatim:
            raise UsageError(f"argument {arg!r}: {key}= is given twice")
        if value:
            verbatim[key] = None if value == "null" else value
    return verbatim, overrides


def _is_group(key: str) -> bool:
    return "." not in key and "/" not in key and (CONF_DIR / key).is_dir()


def _check_type(arg: str, key: str, default, value):
    """``value`` converted to the type of ``default`` (the config's value before this override), or an error."""
    from omegaconf import DictConfig, ListConfig

    if default is None or isinstance(value, type(None)):
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise UsageError(f"argument {arg!r}: {key} expects true or false (default {str(default).lower()})")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise UsageError(f"argument {arg!r}: {key} expects an integer (default {default})")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(f"argument {arg!r}: {key} expects a number (default {default})")
        return float(value)
    elif isinstance(default, str):
        if isinstance(value, (list, dict)):
            raise UsageError(f"argument {arg!r}: {key} expects a single value, got a {type(value).__name__}")
        return value  # options such as merge_lora take auto | true | false: the program checks the value
    elif isinstance(default, ListConfig) and not isinstance(value, list):
        return [value]
    elif isinstance(default, DictConfig) and not isinstance(value, dict):
        raise UsageError(f"argument {arg!r}: {key} is a group of options; set its fields as {key}.NAME=VALUE")
    return value


def _parse(overrides: list[str]):
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    parsed = []
    for arg in overrides:
        try:
            parsed.append(parser.parse_overrides([arg])[0])
        except OverrideParseException as e:
            cause = str(e).splitlines()[0]
            raise UsageError(f"argument {arg!r}: not a valid override ({cause}); quote text as key='...'") from None
    return parsed


def _compose(config: str, overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            return compose(config, overrides=overrides)
    except (HydraException, OmegaConfBaseException) as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        raise UsageError(f"conf/{config}.yaml with {' '.join(overrides)}: {lines[0] if lines else type(e).__name__}") \
            from None


def compose(command: Command, argv: Sequence[str]):
    """The command's config with the arguments applied; raises UsageError naming the bad argument."""
    from omegaconf import OmegaConf

    verbatim, raw = split_arguments(argv, command)
    parsed = _parse(raw)
    groups, values = [], []
    for arg, ov in zip(raw, parsed, strict=False):
        key = ov.key_or_group
        if ov.is_sweep_override() or ov.is_delete() or key.startswith("hydra"):
            values.append((arg, ov))  # checked below
        elif _is_group(key):
            choices = sorted(p.stem for p in (CONF_DIR / key).glob("*.yaml"))
            if ov.value() not in choices and ov.value() is not None:
                raise UsageError(f"argument {arg!r}: no conf/{key}/{ov.value()}.yaml (choices: {', '.join(choices)})")
            groups.append(arg)
        else:
            values.append((arg, ov))
    base = _compose(command.config, groups)
    final = list(groups)
    missing = object()
    for arg, ov in values:
        key = ov.key_or_group
        if key.startswith("hydra"):
            raise UsageError(f"argument {arg!r}: hydra.* settings are not used by {command.prog}")
        if ov.is_delete():
            raise UsageError(f"argument {arg!r}: deleting keys is not supported")
        default = _default(base, key, missing)
        if ov.is_add():
            if default is not missing:
                raise UsageError(f"argument {arg!r}: {key} exists already; set it without '+'")
        elif default is missing:
            raise UsageError(f"argument {arg!r}: unknown key {key!r} in conf/{command.config}.yaml")
        if ov.is_sweep_override():
            from omegaconf import ListConfig

            if not (isinstance(default, ListConfig) and ov.value_type.name == "SIMPLE_CHOICE_SWEEP"):
                raise UsageError(f"argument {arg!r}: a comma makes a list, but {key} takes one value "
                                 f"(quote it as {key}='...' if the comma is part of the value)")
            value = list(ov.value().list)
        else:
            value = ov.value()
        value = _check_type(arg, key, None if default is missing else default, value)
        final.append(f"{'+' if ov.is_add() else ''}{key}={_as_override(value)}")
    cfg = _compose(command.config, final)
    for key, value in verbatim.items():
        if _default(cfg, key, missing) is missing:
            raise UsageError(f"argument {key}=: unknown key {key!r} in conf/{command.config}.yaml")
        if isinstance(value, list):
            value = [escape_interpolation(v) for v in value]
        elif value is not None:
            value = escape_interpolation(value)
        OmegaConf.update(cfg, key, value, merge=False)
    for key in command.required:
        if OmegaConf.is_missing(cfg, key):
            raise UsageError(f"missing argument {key}=... (see {command.prog} --help)")
    return cfg


def _default(cfg, key: str, missing):
    """The value at dotted ``key`` before any override: ``missing`` where the key does not exist, None where
    it exists but has no plain value yet (``???`` or an interpolation that cannot resolve yet)."""
    from omegaconf import DictConfig, OmegaConf

    node = cfg
    for part in key.split("."):
        if not isinstance(node, DictConfig) or part not in node.keys():
            return missing
        node = node._get_node(part)
    if OmegaConf.is_missing(node._get_parent(), key.split(".")[-1]):
        return None
    value = OmegaConf.select(cfg, key, default=missing, throw_on_resolution_failure=False)
    return None if value is missing else value


def _as_override(value) -> str:
    """A Python value written back in Hydra's override grammar (strings quoted, so no re-parsing surprises)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_as_override(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_as_override(v)}" for k, v in value.items()) + "}"
    raise UsageError(f"cannot pass a {type(value).__name__} value")


def take_verbose(args: list[str]) -> tuple[list[str], bool]:
    """``verbose=true|false`` taken out of ``args`` (every command has it); the default is the
    ``AFFECTGPT_VERBOSE`` environment variable (1 / true), which is then set for child processes."""
    verbose = errors.verbose()
    rest = []
    for a in args:
        key, eq, value = a.partition("=")
        if key != "verbose" or not eq:
            rest.append(a)
        elif value.lower() in ("true", "false"):
            verbose = value.lower() == "true"
        else:
            raise UsageError(f"argument {a!r}: verbose expects true or false")
    os.environ["AFFECTGPT_VERBOSE"] = "1" if verbose else "0"
    return rest, verbose


def run(command: Command, program: Callable[..., int | None], argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``) for ``command`` and call ``program(cfg)``.

    Returns the exit code: the program's (None = 0), or the code of ``errors.report`` after its
    one ``error:`` line: 2 for bad input (a :class:`UsageError` among others), 1 for a failed run.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(command.usage())
        return 0
    show = "--cfg" in args
    args = [a for a in args if a != "--cfg"]
    verbose, before = False, os.environ.get("AFFECTGPT_VERBOSE")
    try:
        args, verbose = take_verbose(args)
        errors.quiet_libraries(verbose)
        cfg = compose(command, args)
        if show:
            from omegaconf import OmegaConf

            print(OmegaConf.to_yaml(cfg), end="")
            return 0
        code = program(cfg)
    except BaseException as e:  # noqa: BLE001 -- every error ends as one line (SystemExit passes through)
        return errors.report(e, verbose)
    finally:  # a later command in this process starts from the user's setting, not this one's
        if before is None:
            os.environ.pop("AFFECTGPT_VERBOSE", None)
        else:
            os.environ["AFFECTGPT_VERBOSE"] = before
    return int(code or 0)
