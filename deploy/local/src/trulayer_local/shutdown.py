"""Bounded shutdown of the local stack, and the stack's pidfile.

A stop (Ctrl-C, SIGTERM, ``make down``, or a service that died) gives the services
``SERVICES_STOP_SECONDS`` to stop (each abandoned when its share is up), then Kafka and Redis
``INFRA_STOP_SECONDS`` side by side (SIGKILL after). :class:`ShutdownGuard` is the backstop: armed
when stopping begins, it kills Kafka and Redis and ends the process ``FORCE_AFTER_SECONDS``
later whatever is still running (a clean-up stuck in a thread, a hung client), and at once on a
second Ctrl-C. So the whole stack is down within 15 s even when the broker is gone and every
client of it waits on a timeout.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from pathlib import Path

from trulayer_local import infra

SERVICES_STOP_SECONDS = 6.0
INFRA_STOP_SECONDS = 5.0
FORCE_AFTER_SECONDS = 14.0


def stack_pidfile(cfg: infra.InfraConfig) -> Path:
    return cfg.data_dir / "run" / "stack.pid"


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        return state != "Z"
    return True


def running_stack_pid(cfg: infra.InfraConfig) -> int | None:
    """The pid of the ``trulayer-local up`` process of this data dir while it runs (from its
    pidfile, checked against the process's command line), else None."""
    try:
        pid = int(stack_pidfile(cfg).read_text().strip() or 0)
    except (OSError, ValueError):
        return None
    if pid <= 0 or pid == os.getpid() or not pid_alive(pid):
        return None
    with contextlib.suppress(OSError):
        if b"trulayer" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    return None


class ShutdownGuard:
    """Ends the process ``after`` seconds once armed, taking Kafka and Redis down with it."""

    def __init__(self, cfg: infra.InfraConfig, after: float) -> None:
        self.cfg = cfg
        self.after = after
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def arm(self) -> None:
        """Start the countdown (idempotent)."""
        with self._lock:
            if self._timer is None:
                self._timer = threading.Timer(self.after, self.force, args=(f"still stopping after {self.after:.0f}s",))
                self._timer.daemon = True
                self._timer.start()

    def finish(self, code: int) -> None:
        """Stop Kafka and Redis (bounded), drop the pidfile and exit with ``code`` now, without
        closing the event loop: used when a service's clean-up was abandoned, since closing the
        loop would wait for that task again."""
        print("[up] stopping Kafka and Redis", flush=True)
        infra.stop_all(self.cfg, timeout=INFRA_STOP_SECONDS)
        stack_pidfile(self.cfg).unlink(missing_ok=True)
        print("[up] stopped (abandoned clean-ups left to the exit)", flush=True)
        sys.stdout.flush()
        os._exit(code)

    def force(self, reason: str) -> None:
        """SIGKILL Kafka and Redis, drop the pidfile, and exit 1 now (from any thread)."""
        print(f"[up] {reason}: forcing the stop (SIGKILL to Kafka and Redis)", file=sys.stderr, flush=True)
        for pid in (infra.kafka_pid(self.cfg), infra.redis_pid(self.cfg)):
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        stack_pidfile(self.cfg).unlink(missing_ok=True)
        os._exit(1)
