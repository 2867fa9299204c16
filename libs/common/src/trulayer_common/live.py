"""The live tail's seam between the ingest-worker and the gateways: Redis pub/sub.

Once a batch of traces is stored, the ingest-worker publishes one message per tenant that has
live listeners, on the tenant's channel (:func:`channel`): a JSON array of frames
(:func:`frame`, API.md's ``{trace_id, name, status, latency_ms, created_at}`` plus
``project_id`` and ``model``). A gateway with live clients of a tenant subscribes to that
channel and fans the frames out; it also keeps the tenant in the listener registry (a sorted
set of tenant → expiry, :data:`LISTENERS`) so that workers publish for tenants somebody
listens to and build nothing for the others. So a frame means: this trace is stored and
queryable now. Delivery is at most once per listener (pub/sub): a gateway that was not
subscribed at that moment does not get it.

This module owns the channel names, the registry and the message format; nobody else builds
or parses them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from prometheus_client import Counter
from redis.asyncio import Redis

from trulayer_common.logging import get_logger

log = get_logger(__name__)
CHANNEL_PREFIX = "trulayer:live:"
LISTENERS = "trulayer:live:listeners"
# A gateway renews its tenants well within this; a tenant nobody renews is dropped.
LISTENER_TTL_SECONDS = 30.0
FRAMES_PUBLISHED = Counter("trulayer_live_frames_published_total", "live-tail frames published to Redis")
PUBLISH_FAILURES = Counter("trulayer_live_publish_failures_total", "live-tail publishes that failed (Redis away)")


def channel(tenant_id: str) -> str:
    return CHANNEL_PREFIX + tenant_id


def tenant_of(channel_name: str) -> str:
    return channel_name.removeprefix(CHANNEL_PREFIX)


def frame(trace: Mapping[str, Any]) -> dict[str, Any]:
    """The live frame of a stored trace row."""
    return {
        "trace_id": trace["id"],
        "project_id": trace.get("project_id"),
        "name": trace.get("name") or None,
        "model": trace.get("model") or None,
        "status": trace.get("status"),
        "latency_ms": trace.get("latency_ms"),
        "created_at": trace.get("created_at"),
    }


def encode(frames: Sequence[Mapping[str, Any]]) -> bytes:
    return orjson.dumps(frames)


def decode(message: bytes) -> list[dict[str, Any]]:
    """The frames of a message; [] for anything else (never raises: a bad message is skipped)."""
    try:
        frames = orjson.loads(message)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(frames, list):
        return []
    return [f for f in frames if isinstance(f, dict) and isinstance(f.get("trace_id"), str)]


async def announce(redis: Redis, tenants: Iterable[str]) -> None:
    """A gateway: these tenants have live clients here (for the next ``LISTENER_TTL_SECONDS``)."""
    now = time.time()
    members = {tenant: now + LISTENER_TTL_SECONDS for tenant in tenants}
    pipe = redis.pipeline(transaction=False)
    if members:
        pipe.zadd(LISTENERS, members)
    pipe.zremrangebyscore(LISTENERS, "-inf", now)
    await pipe.execute()


class LivePublisher:
    """The worker's side: publish the frames of stored trace rows, for tenants with listeners.

    Never raises: the live tail is best effort and must not fail (or retry) a written batch."""

    def __init__(self, redis: Redis, refresh_seconds: float = 1.0) -> None:
        self._redis = redis
        self._refresh = refresh_seconds
        self._tenants: frozenset[str] = frozenset()
        self._read_at = float("-inf")

    async def _listening(self) -> frozenset[str]:
        if time.monotonic() - self._read_at >= self._refresh:
            members = await self._redis.zrangebyscore(LISTENERS, time.time(), "+inf")
            self._tenants = frozenset(m.decode() if isinstance(m, bytes) else str(m) for m in members)
            self._read_at = time.monotonic()
        return self._tenants

    async def publish(self, traces: Iterable[Mapping[str, Any]]) -> None:
        try:
            listening = await self._listening()
            if not listening:
                return
            by_tenant: dict[str, list[dict[str, Any]]] = {}
            for trace in traces:
                tenant = trace.get("tenant_id")
                if tenant in listening:
                    by_tenant.setdefault(tenant, []).append(frame(trace))
            if not by_tenant:
                return
            pipe = self._redis.pipeline(transaction=False)
            for tenant, frames in by_tenant.items():
                pipe.publish(channel(tenant), encode(frames))
            await pipe.execute()
            FRAMES_PUBLISHED.inc(sum(len(f) for f in by_tenant.values()))
        except Exception as exc:  # Redis away: the traces are stored; live frames are lost
            PUBLISH_FAILURES.inc()
            # Ask again only after the refresh interval: a batch must not wait on Redis each time.
            self._tenants, self._read_at = frozenset(), time.monotonic()
            log.warning("live_publish_failed", error=repr(exc)[:300])
