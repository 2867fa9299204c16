"""When each API key was last used, kept in Redis rather than in the config log.

The gateway records a use at most once per key per ``RECORD_INTERVAL_SECONDS`` (so a key
sending thousands of requests a minute costs one Redis write a minute, and never a config
record); the control-engine reads the values when it lists keys. Precision is therefore
"within a minute", which is what a dashboard shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from redis.asyncio import Redis

RECORD_INTERVAL_SECONDS = 60
# Forgotten after 400 days without use; a key unused that long shows no last use.
_TTL_SECONDS = 400 * 24 * 3600


def _redis_key(key_id: str) -> str:
    return f"tl:apikey:last_used:{key_id}"


async def record_use(redis: Redis, key_id: str, at: datetime) -> None:
    await redis.set(_redis_key(key_id), str(int(at.timestamp())), ex=_TTL_SECONDS)


async def last_uses(redis: Redis, key_ids: Sequence[str]) -> dict[str, datetime]:
    """Key id → last use, for the keys that have one."""
    if not key_ids:
        return {}
    values = await redis.mget([_redis_key(k) for k in key_ids])
    return {
        key_id: datetime.fromtimestamp(int(value), UTC)
        for key_id, value in zip(key_ids, values, strict=True)
        if value is not None
    }
