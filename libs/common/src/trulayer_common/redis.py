"""Redis client factory (redis-py asyncio), shared by rate limits, quotas, dedup and fan-out."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

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


@contextlib.asynccontextmanager
async def connected_redis(url: str) -> AsyncIterator[Redis]:
    """A client that answered PING (fail fast at start), closed at exit."""
    client = create_redis(url)
    try:
        if not await redis_ok(client):
            raise RuntimeError(f"Redis at {url} is unreachable")
        yield client
    finally:
        await client.aclose()
