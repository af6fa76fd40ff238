"""How every command ends on an error: one line on stderr, exit code 2 for bad input, 1 for a run that failed.

A leaf of the package (standard library only), so the torch-free scorer uses it as well as the apps.

- ``InputError``: something the user gave is wrong (an argument, a manifest row, a clip, a checkpoint or
  export that is truncated, malformed or refused). Exit code 2.
- ``RunError``: the input was fine but the run could not finish (non-finite losses, out of memory,
  a full disk). Exit code 1.

Project errors derive from one of the two (``UsageError``, ``ManifestError``, ``MediaError``, ...).
Library errors a user can cause are mapped by type in :func:`classify` (``OSError`` by errno, the
safetensors / pickle / JSON / YAML / UTF-8 errors of a malformed file); :func:`reading` gives them
the path of the file being read. Anything else is a bug: :func:`report` prints one ``error:``
line naming the code location and exits 1; ``verbose=true`` prints the traceback as well.
:func:`quiet_libraries` keeps the libraries' deprecation warnings, info logs and load progress bars
off stderr (``verbose=true`` lets them through), so that line is all a failing run prints.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import pickle
import re
import sys
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BAD_INPUT = 2
FAILED = 1
INTERRUPTED = 130

# errno values that say the named path is wrong (a typo, a folder for a file, no permission)
_BAD_PATH = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.EEXIST,
             errno.ENAMETOOLONG, errno.ELOOP, errno.ENOTEMPTY, errno.EROFS}
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


class InputError(Exception):
    """Bad input named by the user (argument, data, artifact): one line on stderr, exit code 2."""


class RunError(RuntimeError):
    """A run that could not finish although its input was accepted: one line on stderr, exit code 1."""


def _malformed_file_types() -> tuple[type[BaseException], ...]:
    """Library exception types that mean "this file is not what it claims to be", looked up among the
    modules already imported (an error of a library that was never imported cannot be raised)."""
    found: list[type[BaseException]] = [json.JSONDecodeError, UnicodeDecodeError, pickle.UnpicklingError, EOFError]
    for module, name in (("safetensors", "SafetensorError"), ("yaml", "YAMLError"),
                         ("omegaconf.errors", "OmegaConfBaseException"), ("zipfile", "BadZipFile"),
                         ("gzip", "BadGzipFile")):
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type):
            found.append(cls)
    return tuple(found)


def _out_of_memory_types() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [MemoryError]
    cls = getattr(sys.modules.get("torch"), "OutOfMemoryError", None)
    if isinstance(cls, type):
        found.append(cls)
    return tuple(found)


def first_line(exc: BaseException) -> str:
    """The first non-empty line of the exception's message (terminal colour codes removed), or its type name."""
    for line in re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


def _cause(exc: BaseException) -> str:
    """What a malformed-file error says, in one line."""
    if isinstance(exc, KeyError):
        return f"missing key {exc}"
    if isinstance(exc, pickle.UnpicklingError):  # torch.load(weights_only=True) refusing a pickled object
        lines = [ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines()]
        detail = next((ln for ln in lines if "Unsupported global" in ln), first_line(exc))
        return f"refused to unpickle (holds Python objects, not only tensors: {detail[:200]})"
    return first_line(exc)


def no_space(path: str | os.PathLike | None) -> OSError:
    """The error a write that hit a full file system raises: ``no space left on device: PATH``."""
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), None if path is None else str(path))


def classify(exc: BaseException) -> tuple[int, str] | None:
    """``(exit code, message)`` for an error a user can cause; None for a bug (or SystemExit)."""
    if isinstance(exc, InputError):
        return BAD_INPUT, first_line(exc)
    if isinstance(exc, RunError):
        return FAILED, first_line(exc)
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED, "interrupted"
    if isinstance(exc, (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)) \
            and exc.errno is None:  # raised by this project with its own message
        return BAD_INPUT, first_line(exc)
    if isinstance(exc, OSError) and exc.errno is not None:
        where = exc.filename if exc.filename is not None else None
        if exc.errno in _NO_SPACE:
            return FAILED, f"no space left on device: {where}" if where else "no space left on device"
        cause = exc.strerror or first_line(exc)
        code = BAD_INPUT if exc.errno in _BAD_PATH else FAILED
        return code, f"{where}: {cause}" if where else cause
    if isinstance(exc, OSError):  # no errno: a message of its own
        return FAILED, first_line(exc)
    if isinstance(exc, _out_of_memory_types()):
        return FAILED, f"out of memory ({first_line(exc)})"
    if isinstance(exc, _malformed_file_types()):
        return BAD_INPUT, f"{type(exc).__name__}: {_cause(exc)}"
    return None


@contextmanager
def reading(path: str | os.PathLike, *also: type[BaseException]) -> Iterator[None]:
    """Errors of a malformed file raised inside the block become ``InputError("PATH: cause")``.

    Malformed means the library types of :func:`classify` plus ``also`` (e.g. ``KeyError`` where the
    block reads keys a well-formed file has). Project errors, ``OSError`` (it names its own file)
    and out-of-memory pass unchanged; so does anything else (a bug keeps its traceback)."""
    try:
        yield
    except (InputError, RunError, OSError):
        raise
    except (*_malformed_file_types(), *also) as e:
        raise InputError(f"{path}: {_cause(e)}") from e


# Loggers of the libraries that report loading details at INFO/WARNING (open_clip logs on the root logger;
# DeepSpeed's own logger is "DeepSpeed", which prints on stdout through a handler of its own).
_LIBRARY_LOGGERS = ("transformers", "peft", "accelerate", "deepspeed", "DeepSpeed", "open_clip", "whisper",
                    "huggingface_hub", "torch", "urllib3", "httpx", "PIL", "matplotlib", "numba", "gradio")


def _errors_only(record: logging.LogRecord) -> bool:
    """A logger filter: a library that sets its own level when it loads (DeepSpeed sets WARNING on
    import, after this command quieted it) still reaches no handler below ERROR."""
    return record.levelno >= logging.ERROR


def verbose() -> bool:
    """Whether this command runs with ``verbose=true`` (``affectgpt.apps.cli.run`` sets AFFECTGPT_VERBOSE)."""
    return os.environ.get("AFFECTGPT_VERBOSE", "").lower() in ("1", "true", "yes")


def is_library_record(record) -> bool:
    """A log record of a library below ERROR (open_clip logs on the root logger)."""
    top = record.name.split(".")[0]
    return record.levelno < 40 and (record.name == "root" or top in _LIBRARY_LOGGERS)


def quiet_libraries(verbose: bool) -> None:
    """Without ``verbose``: no library deprecation warnings, no transformers/huggingface_hub progress
    bars or info/warning logs, and a logging handler that fails (a full disk under train.log) does
    not print its own traceback. Set at the start of every command, before the libraries load."""
    if verbose:
        return
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' "Loading weights" bars follow it
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("PYTHONWARNINGS", "ignore")  # DataLoader workers and launched ranks
    for category in (DeprecationWarning, FutureWarning, UserWarning, PendingDeprecationWarning, RuntimeWarning):
        warnings.filterwarnings("ignore", category=category)
    logging.raiseExceptions = False
    for name in _LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
        logging.getLogger(name).addFilter(_errors_only)  # once: addFilter skips a filter it holds
    if "transformers" in sys.modules:  # imported before this command started (tests, the demo's reload)
        from transformers.utils import logging as hf_logging  # lazy: only when already loaded

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars  # lazy: only when already loaded

        disable_progress_bars()


def _where(exc: BaseException) -> str:
    """``file:line`` of the innermost frame of this project's code (or of any code) in the traceback."""
    frames = traceback.extract_tb(exc.__traceback__)
    root = str(Path(__file__).resolve().parents[2])
    own = [f for f in frames if f.filename.startswith(root) and "site-packages" not in f.filename]
    f = (own or frames or [None])[-1]
    return f"{os.path.relpath(f.filename, root) if f.filename.startswith(root) else f.filename}:{f.lineno}" if f \
        else "?"


def report(exc: BaseException, verbose: bool = False, bad_input: tuple[type[BaseException], ...] = ()) -> int:
    """Print the one ``error:`` line for ``exc`` on stderr (with ``verbose``, the traceback before it)
    and return the exit code. ``bad_input``: further types this command raises for bad input (the
    scorer's ValueError). A SystemExit passes through."""
    if isinstance(exc, SystemExit):
        raise exc
    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
    known = classify(exc)
    if known is None and isinstance(exc, bad_input):
        known = BAD_INPUT, first_line(exc)
    if known is None:
        code = FAILED
        message = (f"internal error at {_where(exc)}: {type(exc).__name__}: {first_line(exc)} "
                   f"(a bug; rerun with verbose=true for the traceback)")
    else:
        code, message = known
    print(f"error: {message}", file=sys.stderr, flush=True)
    return code


def moved_command(module: str) -> int:
    """For ``if __name__ == "__main__"`` in a library module whose command line moved to affectgpt/apps: one line
    naming the new command, exit code 2 (run as ``python -m`` the module would otherwise do nothing and exit 0)."""
    name = module.rsplit(".", 1)[-1]
    print(f"error: python -m {module} is now python -m affectgpt.apps.{name} (or python -m affectgpt {name})",
          file=sys.stderr)
    return 2
