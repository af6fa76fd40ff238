"""Files written whole or not at all, and JSONL read with errors that name the file and line.

A leaf of the package (standard library only, imports nothing of ``affectgpt``), so the torch-free
scorer in ``affectgpt.eval`` uses it as well as the training, data and export code.

- ``atomic_write(path, "w"|"wb")``: an open file; ``atomic_path(path)``: a temporary path for a
  library that writes by file name (``savefig``, safetensors' ``save_file``). The file is written
  next to ``path``, fsynced and renamed over it; on an error it is removed and ``path`` is left
  as it was.
- ``atomic_dir(path)``: a folder built in a temporary sibling and renamed into place when the
  block ends without an error; ``replace_dir`` is that last step on its own (for a folder that
  several processes fill, as a training checkpoint).
- ``iter_jsonl(path)``: ``(line number, object)`` per non-blank line.
- ``writing(path)``: an error raised while the block writes ``path`` on a full file system becomes
  ``OSError(ENOSPC, ..., path)``, whatever the library said (torch.save: "unexpected pos 576 vs
  534"; safetensors: "I/O error"; Python: ENOSPC without a file name). The atomic writers use it,
  so a full disk reads ``no space left on device: PATH`` (``affectgpt.core.errors``).

Temporary names are hidden and do not end with the target's suffix (``.NAME.tmp-PID-RANDOM``), so
a leftover of a killed process never matches a ``*.safetensors`` / ``*.jsonl`` glob of the folder.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

FULL_BELOW = 1 << 20  # bytes: a write that failed with less free space than this failed for want of space


def disk_full(path: str | Path) -> bool:
    """Whether the file system that holds ``path`` (or its nearest existing parent) has less than
    ``FULL_BELOW`` bytes free for this process (root may use the blocks reserved for it)."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        st = os.statvfs(p)
    except OSError:
        return False
    free = st.f_bfree if os.geteuid() == 0 else st.f_bavail
    return free * st.f_frsize < FULL_BELOW


@contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Errors raised in the block that writes ``path``: ENOSPC / EDQUOT, or any error while the file
    system is full (checked before the caller cleans up its partial file), are re-raised as
    ``OSError(ENOSPC, "No space left on device", path)``; others pass unchanged."""
    try:
        yield
    except Exception as e:
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT) and e.filename is not None \
                and not Path(e.filename).name.startswith("."):
            raise  # an inner ``writing`` (or the OS) named the file already
        if (isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)) or disk_full(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from e
        raise


def hidden_sibling(path: Path, tag: str) -> Path:
    """``.NAME.TAG-PID-RANDOM`` next to ``path``: unique per process and call."""
    return path.parent / f".{path.name}.{tag}-{os.getpid()}-{secrets.token_hex(4)}"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as e:  # some file systems cannot fsync a directory; the rename is still atomic
        if not (path.is_dir() and e.errno in (errno.EINVAL, errno.ENOTSUP)):
            raise
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path next to ``path`` for the block to write; renamed over ``path`` when the
    block ends without an error (after an fsync, so a crash never leaves a truncated file under
    the final name), removed when it raises."""
    path = Path(path)
    tmp = hidden_sibling(path, "tmp")
    try:
        with writing(path):
            yield tmp
            if not tmp.is_file():
                raise FileNotFoundError(f"{tmp}: nothing was written for {path}")
            _fsync(tmp)
            os.replace(tmp, path)
            _fsync(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str = "utf-8"):
    """``open(path, mode)`` written whole or not at all (``mode`` "w" or "wb"); see ``atomic_path``."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(path) as tmp, open(tmp, mode.replace("w", "x"), encoding=None if "b" in mode else encoding) as f:
        yield f


def remove_dir(path: str | Path) -> None:
    """Delete a folder by renaming it to a hidden sibling first: a kill during the deletion leaves
    ``.NAME.old-*``, never a half-deleted folder under its own name."""
    path = Path(path)
    trash = hidden_sibling(path, "old")
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def replace_dir(src: str | Path, dst: str | Path, keep_existing: bool = False) -> bool:
    """Rename the finished folder ``src`` to ``dst``; returns whether ``src`` went into place.

    An existing ``dst`` is moved aside first and deleted after, so a kill in between leaves one of
    the two whole. With ``keep_existing`` a non-empty ``dst`` (another process finished the same
    folder first) is kept and ``src`` deleted; an empty one is replaced."""
    src, dst = Path(src), Path(dst)
    if keep_existing or not dst.exists():
        try:
            os.rename(src, dst)  # POSIX: replaces an empty folder, fails on a non-empty one
        except OSError as e:
            if not (keep_existing and e.errno in (errno.ENOTEMPTY, errno.EEXIST)):
                raise
            shutil.rmtree(src, ignore_errors=True)
            return False
    else:
        old = hidden_sibling(dst, "old")
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    _fsync(dst.parent)
    return True


@contextmanager
def atomic_dir(path: str | Path, keep_existing: bool = False) -> Iterator[Path]:
    """A fresh temporary folder next to ``path`` for the block to fill; ``replace_dir`` puts it in
    place when the block ends without an error, and it is deleted when the block raises. Files in
    it are not fsynced one by one: a caller that must survive a power cut writes its own marker."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = hidden_sibling(path, "tmp")
    tmp.mkdir()
    try:
        with writing(path):
            yield tmp
            replace_dir(tmp, path, keep_existing)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def iter_jsonl(path: str | Path, error: type[Exception] = ValueError,
               on_bad: Callable[[int, Exception], None] | None = None) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for every non-blank line of a JSONL file (``.gz``: gzip-compressed).

    Lines end at ``\\n`` only (a JSON string may hold U+2028 or a lone ``\\r``); a UTF-8 BOM before
    the first line is allowed. A line that is not UTF-8, not JSON or not a JSON object raises
    ``error("PATH:LINE: cause")``; with ``on_bad``, ``on_bad(line number, that exception)`` is called
    instead and the line skipped."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            where = f"{path}:{lineno}"
            try:
                text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as e:
                bad = error(f"{where}: not UTF-8 text (byte {e.start + 1})")
            else:
                if not text.strip():
                    continue
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as e:
                    bad = error(f"{where}: not valid JSON ({e.msg} at column {e.colno})")
                else:
                    if isinstance(record, dict):
                        yield lineno, record
                        continue
                    bad = error(f"{where}: expected a JSON object, found {type(record).__name__}")
            if on_bad is None:
                raise bad
            on_bad(lineno, bad)
