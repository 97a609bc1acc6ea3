"""One writer per folder: a lock file that names its holder, and takes over from dead ones.

``with folder_lock(folder, "lw_train"):`` creates ``folder/.lw.lock`` atomically (``O_CREAT | O_EXCL``)
holding the process id, host, command and start time as JSON. A second command on the same folder
fails at once with a message naming the lock and the process holding it — never two writers
interleaving. A lock whose process no longer runs (on this host) is stale: it is taken over, and the
takeover is reported. A lock file without a readable holder is one that another process has just
created and is writing its name into: it counts as held for :data:`TAKING_SECONDS` (two commands started at
the same moment must not both take the folder), and as stale after that.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .errors import LiverwildError
from .log import get_logger

logger = get_logger(__name__)

LOCK_NAME = ".lw.lock"
TAKING_SECONDS = 10.0  # a lock file without its holder's name counts as being taken this long


class LockedError(LiverwildError):
    """Another live process holds the folder's lock."""


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _alive(holder: dict, host: str) -> bool:
    """A lock ``holder`` still holds it: a process id that runs on this ``host``, or any on another host."""
    pid = holder.get("pid")
    return isinstance(pid, int) and (holder.get("host") != host or process_alive(pid))


def being_taken(path: Path, holder: dict) -> bool:
    """``path`` has no holder's name yet (empty or half-written) and was created in the last
    :data:`TAKING_SECONDS`: its creator is writing its name into it."""
    if holder:
        return False
    try:
        return time.time() - path.stat().st_mtime < TAKING_SECONDS
    except FileNotFoundError:
        return False


def held(path: Path, holder: dict, host: str) -> bool:
    """The lock file ``path`` with ``holder`` (its content) is held: by a live holder, or being taken."""
    return _alive(holder, host) or being_taken(path, holder)


def in_use(path: Path, folder, holder: dict) -> str:
    """The one-line message of a ``folder`` whose lock file ``path`` a live ``holder`` holds (or, holder
    still unnamed, another process is taking)."""
    if not holder:
        return f"{path}: another process is taking {folder} at this moment; try again"
    return (
        f"{path}: {folder} is in use by process {holder.get('pid')} on {holder.get('host')} ({holder.get('command')}, "
        f"since {holder.get('since')}); wait for it to finish, or remove the lock file if that process is gone"
    )


def acquire(folder, command: str | None = None, name: str = LOCK_NAME) -> Path:
    """Create ``folder/<name>`` (default ``.lw.lock``) for this process; raises :class:`LockedError` if a
    live process holds it. Jobs that share a folder by design (prediction parts) lock their own name."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    me = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": command or " ".join(sys.argv),
        "since": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(path)
            pid = holder.get("pid")
            if held(path, holder, socket.gethostname()):
                raise LockedError(in_use(path, folder, holder)) from None
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # stale: its process is dead (or the file empty)
            gone = f"of process {pid} (no longer running)" if pid is not None else "(left without its holder's name)"
            logger.warning(f"{path}: took over a stale lock {gone}")
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return path
    raise LockedError(f"{path}: could not take the lock (another process keeps taking it)")


def held_by_others(folder, own: Path | None = None) -> list[Path]:
    """The lock files of ``folder`` (``.lw*.lock``: the whole folder's and the parts') held by another live
    process (or a process on another host), except ``own``."""
    pid, host = os.getpid(), socket.gethostname()
    holders = {path: _holder(path) for path in sorted(Path(folder).glob(".lw*.lock")) if path != own}
    return [
        path
        for path, holder in holders.items()
        if held(path, holder, host) and (holder.get("pid"), holder.get("host")) != (pid, host)
    ]


def refuse_other_writers(folder, own: Path, compatible: Callable[[str], bool] = lambda name: False) -> None:
    """Release ``own`` (this process's lock of ``folder``) and raise :class:`LockedError`, naming the other
    lock and its holder, when another live process holds a lock file of ``folder`` whose name
    ``compatible`` does not accept. Jobs that share a folder by design (the parts of one prediction split)
    accept each other's locks; anything else would write the same files."""
    others = [path for path in held_by_others(folder, own) if not compatible(path.name)]
    if others:
        release(own)
        raise LockedError(in_use(others[0], folder, _holder(others[0])))


def release(path: Path) -> None:
    holder = _holder(path)
    if holder.get("pid") == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def folder_lock(folder, command: str | None = None):
    """Hold ``folder``'s lock for the block (see the module docstring)."""
    path = acquire(folder, command)
    try:
        yield path
    finally:
        release(path)
