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


_SEEN_LUA = """
local current = redis.call('SMISMEMBER', KEYS[1], unpack(ARGV))
local previous = redis.call('SMISMEMBER', KEYS[2], unpack(ARGV))
for i = 1, #current do current[i] = current[i] + previous[i] end
return current
"""


class TraceDeduplicator:
    def __init__(self, redis: Redis, ttl_seconds: int) -> None:
        self._redis = redis
        self._ttl = max(int(ttl_seconds), 1)
        # One round trip and one command to pack, whatever the batch size (EVALSHA, cached).
        self._seen_script = redis.register_script(_SEEN_LUA)

    def _key(self, tenant_id: str, bucket: int) -> str:
        return f"tl:seen:{tenant_id}:{bucket}"

    def _bucket(self) -> int:
        return int(time.time()) // self._ttl

    async def seen(self, tenant_id: str, trace_ids: Sequence[str]) -> set[str]:
        if not trace_ids:
            return set()
        bucket = self._bucket()
        keys = [self._key(tenant_id, bucket), self._key(tenant_id, bucket - 1)]
        try:
            flags = await self._seen_script(keys=keys, args=list(trace_ids))
        except Exception as exc:
            DEDUP_FAIL_OPEN.inc()
            log.warning("dedup_check_failed", error=str(exc))
            return set()
        return {t for t, flag in zip(trace_ids, flags, strict=True) if flag}

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
