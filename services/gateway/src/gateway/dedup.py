"""Answers ``200 duplicate`` for a re-sent trace id, remembering ids in Redis for a while.

Ids are marked only *after* the broker acknowledged them, so a failed produce never turns a
client's retry into a false duplicate (which would lose the trace). Two identical requests
racing each other may both be accepted; storage is keyed by id, so the trace is still stored
once. Redis trouble fails open: the check is skipped and counted, ingest goes on.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import Counter
from redis.asyncio import Redis

from trulayer_common.logging import get_logger

log = get_logger(__name__)
DEDUP_FAIL_OPEN = Counter("trulayer_gateway_dedup_fail_open_total", "dedup checks skipped: Redis unavailable")


class TraceDeduplicator:
    def __init__(self, redis: Redis, ttl_seconds: int) -> None:
        self._redis = redis
        self._ttl = ttl_seconds

    @staticmethod
    def _key(tenant_id: str, trace_id: str) -> str:
        return f"tl:seen:{tenant_id}:{trace_id}"

    async def seen(self, tenant_id: str, trace_ids: Sequence[str]) -> set[str]:
        if not trace_ids:
            return set()
        try:
            values = await self._redis.mget([self._key(tenant_id, t) for t in trace_ids])
        except Exception as exc:
            DEDUP_FAIL_OPEN.inc()
            log.warning("dedup_check_failed", error=str(exc))
            return set()
        return {t for t, v in zip(trace_ids, values, strict=True) if v is not None}

    async def mark(self, tenant_id: str, trace_ids: Sequence[str]) -> None:
        if not trace_ids:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for trace_id in trace_ids:
                    pipe.set(self._key(tenant_id, trace_id), b"1", ex=self._ttl)
                await pipe.execute()
        except Exception as exc:
            DEDUP_FAIL_OPEN.inc()
            log.warning("dedup_mark_failed", error=str(exc))
