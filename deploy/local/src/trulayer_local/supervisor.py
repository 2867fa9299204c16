"""Keeps the local stack's Kafka and Redis running while ``trulayer-local up`` runs.

Every second :class:`InfraSupervisor` looks at the broker's and Redis's pids (from their
pidfiles). One that died is started again on the same data and ports, saying so; a start that
fails is retried after 1, 2, 4, 8 s. After ``max_attempts`` failed starts in a row it gives up:
:meth:`InfraSupervisor.run` raises :class:`SupervisionError` with the reason, and the stack
stops everything and exits non-zero. A restart in progress is cancelled by :meth:`close` (the
half-started process is stopped again), so a stack shutting down never leaves one behind.

The services need nothing from here: their clients reconnect by themselves, readiness reports
the outage meanwhile, and the gateway answers 503 while the broker cannot acknowledge.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from trulayer_common.logging import get_logger
from trulayer_local import infra

log = get_logger(__name__)


class SupervisionError(Exception):
    """Kafka or Redis died and could not be started again."""


@dataclass(frozen=True)
class Supervised:
    name: str
    pid: Callable[[infra.InfraConfig], int | None]
    start: Callable[[infra.InfraConfig, threading.Event | None], None]


SUPERVISED = (
    Supervised("kafka", infra.kafka_pid, infra.start_kafka),
    Supervised("redis", infra.redis_pid, infra.start_redis),
)


def _say(message: str) -> None:
    print(f"[up] {message}", flush=True)


class InfraSupervisor:
    def __init__(
        self,
        cfg: infra.InfraConfig,
        *,
        interval: float = 1.0,
        max_attempts: int = 5,
        first_backoff: float = 1.0,
        parts: Sequence[Supervised] = SUPERVISED,
    ) -> None:
        self.cfg = cfg
        self.parts = list(parts)
        self.interval = interval
        self.max_attempts = max_attempts
        self.first_backoff = first_backoff
        self._cancel = threading.Event()
        self.restarts: dict[str, int] = {p.name: 0 for p in self.parts}

    async def run(self) -> None:
        """Watch until cancelled; raises :class:`SupervisionError` when a restart keeps failing."""
        while True:
            for part in self.parts:
                if part.pid(self.cfg) is None:
                    await self._restart(part)
            await asyncio.sleep(self.interval)

    async def _restart(self, part: Supervised) -> None:
        died_at = time.monotonic()
        _say(f"{part.name} is not running any more: starting it again")
        log.warning("infra_died", part=part.name)
        last_error = ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                await asyncio.to_thread(part.start, self.cfg, self._cancel)
            except infra.InfraError as exc:
                if self._cancel.is_set():
                    raise
                last_error = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
                delay = self.first_backoff * 2 ** (attempt - 1)
                _say(f"restarting {part.name} failed (attempt {attempt}/{self.max_attempts}): {last_error}")
                if attempt < self.max_attempts:
                    _say(f"next attempt in {delay:.0f}s")
                    await asyncio.sleep(delay)
                continue
            self.restarts[part.name] += 1
            took = time.monotonic() - died_at
            _say(f"{part.name} restarted after {took:.1f}s")
            log.info("infra_restarted", part=part.name, seconds=round(took, 2), attempt=attempt)
            return
        raise SupervisionError(
            f"{part.name} died and could not be started again ({self.max_attempts} attempts): {last_error}"
        )

    def close(self) -> None:
        """Abort a restart in progress (from any thread); the pending start stops what it spawned."""
        self._cancel.set()
