"""The lock of an embedded chDB data directory, checked before opening it.

chDB (like a ClickHouse server) holds an exclusive ``flock`` on ``<path>/status`` while it has
the directory open, and writes its pid there. A second process opening the same directory
gets an opaque ``Error initializing EmbeddedServer (BAD_ARGUMENTS)``. :func:`check_chdb_lock`
says what is going on instead:

* the lock is held by another live process (typically a local stack that did not stop):
  :class:`ChdbLockedError` naming the pid and its command line, and what to do;
* the lock is free but ``status`` names a process that is gone (a crash or ``kill -9``): the
  kernel released its lock with it, so the stale file is removed (logged) and opening is safe;
* held by this very process (a second client on the same directory): fine.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
from pathlib import Path

from trulayer_common.logging import get_logger

log = get_logger(__name__)
_PID = re.compile(rb"^PID:\s*(\d+)", re.MULTILINE)


class ChdbLockedError(RuntimeError):
    """Another live process has this chDB data directory open."""


def _status_pid(status: Path) -> int | None:
    with contextlib.suppress(OSError):
        match = _PID.search(status.read_bytes())
        if match:
            return int(match.group(1))
    return None


def _cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    return ""


def check_chdb_lock(path: Path) -> None:
    """Raise :class:`ChdbLockedError` when another live process holds ``path``; clear a stale lock."""
    status = path / "status"
    if not status.exists():
        return
    owner = _status_pid(status)
    if owner == os.getpid():
        return
    fd = os.open(status, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            who = f"pid {owner} ({_cmdline(owner) or 'command line unknown'})" if owner else "another process"
            raise ChdbLockedError(
                f"the embedded ClickHouse data directory {path} is in use by {who}: only one process "
                "may open it. Stop that process first (for a local stack left behind: make down)."
            ) from None
        # Free: whoever wrote the file is gone (the kernel drops a flock with its process).
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    if owner is not None:
        log.warning("chdb_stale_lock_cleared", path=str(path), dead_pid=owner)
        status.unlink(missing_ok=True)
