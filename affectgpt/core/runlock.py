"""One job per folder: a lock file held for the life of the process that writes the folder.

``acquire(folder, command)`` is called once per job (training: rank 0; the feature extractor, manifest
inference, the benchmark runner: their main process) before anything is written there. A second job
gets :class:`FolderLocked` naming the holder (pid, host, start time, command line).

Mechanism: a POSIX record lock (``fcntl.lockf``) on ``FOLDER/.affectgpt.lock`` (a file that stays),
plus the holder's record written into it. A kernel lock rather than an ``O_EXCL`` pid file because the
kernel drops it when the holder dies however it dies (SIGKILL, OOM killer), so no pid has to be
probed: a pid file can only guess whether its pid is still the same process (pids are reused) and
cannot probe a pid on another host at all. ``lockf`` rather than ``flock`` because a POSIX lock
belongs to the process and is not inherited by ``fork``: with flock, the DataLoader workers of a
killed job kept its lock for seconds after it died. POSIX locks also work across NFS. Their one trap
(closing any descriptor of the file drops the process's lock) is why a process never opens a lock
file it already holds (``_held``). The record only names the holder: a clean exit
empties it (``release``, also registered with ``atexit``), so a non-empty record under a free lock
is the mark of a killed job, and its successor says that it takes the lock over.

File systems without locks (some Lustre mounts, ``ENOLCK`` or ``EOPNOTSUPP``) fall back to
the record alone: a record of a live pid on this host, or of any pid on another host (which cannot
be checked), refuses; a record of a dead pid on this host is taken over. That fallback cannot stop
two jobs that start within the same instant.

Standard library only (a leaf like :mod:`affectgpt.core.fileio`): the torch-free commands use it too.
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

LOCK_NAME = ".affectgpt.lock"
_held: dict[Path, Lock] = {}  # lock files this process holds (see the module docstring)


class FolderLocked(RuntimeError):
    """Another live job holds the folder's lock (the message names it)."""


@dataclass
class Lock:
    path: Path
    fd: int | None
    took_over: dict | None = None  # the record of a killed holder whose lock this one took over

    def release(self) -> None:
        """Empty the record and drop the lock (idempotent)."""
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)
            fcntl.lockf(self.fd, fcntl.LOCK_UN)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None
        _held.pop(self.path.resolve(), None)

    def describe_takeover(self) -> str:
        return f"took over the lock {self.path} of {holder_text(self.took_over)}, which ended without releasing it"


def release_all() -> None:
    """Release every lock this process holds: a command's locks end with the command (``apps.cli.run``), so a
    process that runs two commands on one folder (a notebook, a test) is not refused by its own first one."""
    for lock in list(_held.values()):
        lock.release()


def holder_text(record: dict | None) -> str:
    if not record:
        return "an unknown process"
    started = record.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if isinstance(started, (int, float)) else "?"
    return f"pid {record.get('pid')} on {record.get('host')} (started {when}: {record.get('command', '?')})"


def lock_path(target: str | Path, is_file: bool = False) -> Path:
    """The lock of a folder (inside it) or of a single output file (a hidden sibling)."""
    target = Path(target)
    return target.parent / f".{target.name}.lock" if is_file else target / LOCK_NAME


def _record(command: str) -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
            "command": command or " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]])}


def _read(fd: int) -> dict | None:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 65536)
    if not raw.strip():
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        return {"pid": "?", "host": "?", "command": raw[:80].decode("utf-8", "replace")}
    return record if isinstance(record, dict) else None


def _alive_here(record: dict) -> bool:
    """Whether the record's pid runs on this host (another host's pid counts as alive: it cannot be checked)."""
    if record.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(record["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, TypeError, ValueError):
        return True
    return True


def acquire(target: str | Path, command: str = "", is_file: bool = False) -> Lock:
    """Lock ``target`` (a folder, created if absent; or an output file with ``is_file``) for this process.
    Raises FolderLocked naming the live holder; takes over (``Lock.took_over``) a killed one's lock."""
    path = lock_path(target, is_file)
    if not is_file and Path(target).exists() and not Path(target).is_dir():
        raise NotADirectoryError(f"{target}: exists and is not a folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.resolve() in _held:
        raise FolderLocked(f"{target}: already locked by this process (pid {os.getpid()}); lock {path}")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EAGAIN):
                raise FolderLocked(f"{target}: in use by {holder_text(_read(fd))}; lock {path}. Wait for that job "
                                   f"to end, or give this one another folder") from None
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            previous = _read(fd)  # no flock on this file system: the record alone decides
            if previous and _alive_here(previous):
                raise FolderLocked(f"{target}: in use by {holder_text(previous)} (by its lock record {path}; this "
                                   f"file system has no locks). Delete {path} if that job has ended") from None
        else:
            previous = _read(fd)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(_record(command)) + "\n").encode())
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        raise
    lock = Lock(path, fd, previous)
    _held[path.resolve()] = lock
    atexit.register(lock.release)
    return lock
