"""Answers ``200 duplicate`` for a re-sent trace id, remembering ids in Redis for a while.

Ids live in one Redis set per tenant and time bucket (``dedup_ttl_seconds`` wide); a lookup
checks the current and the previous bucket, so an id is remembered for one to two TTLs. Two
commands per batch instead of one per id, and a set member costs far less memory than a key.

Ids are marked only *after* the broker acknowledged them, so a failed produce never turns a
client's retry into a false duplicate (which would lose the trace). Two identical requests
racing each other may both be accepted; storage is keyed by id, so the trace is still stored
once. Redis trouble fails open: the check is skipped and counted, ingest goes on.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from prometheus_client import Counter
from redis.asyncio import Redis

from trulayer_common.logging import get_logger

log = get_logger(__name__)
DEDUP_FAIL_OPEN = Counter("trulayer_gateway_dedup_fail_open_total", "dedup checks skipped: Redis unavailable")


class TraceDeduplicator:
    def __init__(self, redis: Redis, ttl_seconds: int) -> None:
        self._redis = redis
        self._ttl = max(int(ttl_seconds), 1)

    def _key(self, tenant_id: str, bucket: int) -> str:
        return f"tl:seen:{tenant_id}:{bucket}"

    def _bucket(self) -> int:
        return int(time.time()) // self._ttl

    async def seen(self, tenant_id: str, trace_ids: Sequence[str]) -> set[str]:
        if not trace_ids:
            return set()
        bucket = self._bucket()
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.smismember(self._key(tenant_id, bucket), list(trace_ids))
                pipe.smismember(self._key(tenant_id, bucket - 1), list(trace_ids))
                current, previous = await pipe.execute()
        except Exception as exc:
            DEDUP_FAIL_OPEN.inc()
            log.warning("dedup_check_failed", error=str(exc))
            return set()
        return {t for t, a, b in zip(trace_ids, current, previous, strict=True) if a or b}

    async def mark(self, tenant_id: str, trace_ids: Sequence[str]) -> None:
        if not trace_ids:
            return
        key = self._key(tenant_id, self._bucket())
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.sadd(key, *trace_ids)
                pipe.expire(key, 2 * self._ttl + 60)
                await pipe.execute()
        except Exception as exc:
            DEDUP_FAIL_OPEN.inc()
            log.warning("dedup_mark_failed", error=str(exc))
