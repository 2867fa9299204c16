"""Records when API keys are used: one Redis write per key per minute per replica, off the request path.

The control-engine shows the value as ``last_used_at`` (see
:mod:`trulayer_common.config.key_usage`). Writes run as background tasks so a slow or absent
Redis never delays a request; failures are logged and dropped (the next minute retries).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from aiohttp import web
from redis.asyncio import Redis

from trulayer_common.config.key_usage import RECORD_INTERVAL_SECONDS, record_use
from trulayer_common.logging import get_logger

log = get_logger(__name__)


class KeyUsageRecorder:
    def __init__(self, redis: Redis, interval_seconds: float = RECORD_INTERVAL_SECONDS) -> None:
        self._redis = redis
        self._interval = interval_seconds
        self._last: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def used(self, key_id: str) -> None:
        """Note a use of ``key_id``; writes to Redis if this replica has not in the last interval."""
        now = time.monotonic()
        if now - self._last.get(key_id, float("-inf")) < self._interval:
            return
        self._last[key_id] = now
        task = asyncio.create_task(self._write(key_id, datetime.now(UTC)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, key_id: str, at: datetime) -> None:
        try:
            await record_use(self._redis, key_id, at)
        except Exception as exc:
            self._last.pop(key_id, None)  # try again on the next use
            log.warning("key_usage_write_failed", key_id=key_id, error=repr(exc))

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


key_usage_key = web.AppKey("key_usage", KeyUsageRecorder)
