"""Redis client factory (redis-py asyncio), shared by rate limits, quotas, dedup and fan-out."""

from __future__ import annotations

from redis.asyncio import Redis


def create_redis(url: str) -> Redis:
    """A pooled client with short timeouts: Redis is on the hot path and must fail fast."""
    return Redis.from_url(
        url,
        socket_connect_timeout=1.0,
        socket_timeout=1.0,
        health_check_interval=15,
        retry_on_timeout=False,
    )


async def redis_ok(client: Redis) -> bool:
    try:
        return bool(await client.ping())
    except Exception:
        return False
