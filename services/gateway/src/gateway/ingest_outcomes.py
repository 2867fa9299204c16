"""What the gateway answered to each tenant's ingest requests, for ``GET /v1/ingestion-health``.

Every request of a route in the ``ingest`` limit bucket that got past authentication (a 401 has
no tenant to count for) is counted by outcome: ``ok`` for a 2xx, ``<status>:<code>`` otherwise
(``400:validation_error``, ``429:rate_limited``, ``503:unavailable``). Counts gather in memory
and are flushed to Redis every ``INGEST_OUTCOMES_FLUSH_SECONDS`` (one pipeline for all
tenants), so the hot path does no Redis round trip for them: hashes per tenant and minute (kept
two hours) and per tenant and hour (kept eight days), summed by any gateway replica. A
gateway that crashes loses its last few seconds of counts.

This module owns the key format, writing and reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web
from redis.asyncio import Redis

from gateway.resources import principal_key, redis_key, settings_key
from gateway.routes import route_table_key
from trulayer_common.errors import ApiError
from trulayer_common.http import Handler
from trulayer_common.logging import get_logger

log = get_logger(__name__)
_PREFIX = "trulayer:ingest-outcomes"
OK = "ok"
_GRAINS = (("m", 60, 2 * 3600), ("h", 3600, 8 * 86400))  # grain, seconds, expiry


def _key(grain: str, tenant_id: str, start: int) -> str:
    return f"{_PREFIX}:{grain}:{tenant_id}:{start}"


def outcome(status: int, code: str | None) -> str:
    return OK if 200 <= status < 300 else f"{status}:{code or ''}"


class IngestOutcomes:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._pending: Counter[tuple[str, int, str]] = Counter()

    def count(self, tenant_id: str, status: int, code: str | None) -> None:
        self._pending[(tenant_id, int(time.time()), outcome(status, code))] += 1

    async def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, Counter()
        pipe = self._redis.pipeline(transaction=False)
        keys: set[tuple[str, int]] = set()
        for (tenant, at, field), n in pending.items():
            for grain, seconds, ttl in _GRAINS:
                key = _key(grain, tenant, at - at % seconds)
                pipe.hincrby(key, field, n)
                keys.add((key, ttl))
        for key, ttl in keys:
            pipe.expire(key, ttl)
        try:
            await pipe.execute()
        except Exception as exc:  # Redis away: keep the counts for the next flush
            self._pending.update(pending)
            log.warning("ingest_outcomes_flush_failed", error=repr(exc)[:300])

    async def read(self, tenant_id: str, since: float, until: float) -> Counter[str]:
        """Counts per outcome of the tenant in ``[since, until]``, by minute for a window of up to
        two hours, by hour beyond (the first hour then counts whole)."""
        grain, seconds = ("m", 60) if until - since <= 2 * 3600 else ("h", 3600)
        first = int(since) - int(since) % seconds
        keys = [_key(grain, tenant_id, start) for start in range(first, int(until) + 1, seconds)]
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(key)
        total: Counter[str] = Counter()
        for found in await pipe.execute():
            for field, n in found.items():
                total[field.decode() if isinstance(field, bytes) else str(field)] += int(n)
        return total


ingest_outcomes_key = web.AppKey("ingest_outcomes", IngestOutcomes)


@web.middleware
async def ingest_outcomes_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count the outcome of authenticated requests of ingest routes (after authentication,
    around the limits, so 429s are counted)."""
    spec = request.app[route_table_key].spec_of(request)
    if spec is None or spec.limit != "ingest" or principal_key not in request:
        return await handler(request)
    status: int = 500
    code: str | None = "internal_error"
    try:
        response = await handler(request)
        status, code = response.status, None
        return response
    except ApiError as exc:
        status, code = exc.status, exc.code
        raise
    except web.HTTPException as exc:
        status, code = exc.status, None
        raise
    finally:
        request.app[ingest_outcomes_key].count(request[principal_key].tenant.id, status, code)


@dataclass
class _Flusher:
    outcomes: IngestOutcomes
    seconds: float

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.seconds)
            await self.outcomes.flush()


async def ingest_outcomes_ctx(app: web.Application) -> AsyncIterator[None]:
    outcomes = IngestOutcomes(app[redis_key])
    app[ingest_outcomes_key] = outcomes
    task = asyncio.create_task(_Flusher(outcomes, app[settings_key].ingest_outcomes_flush_seconds).run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await outcomes.flush()
