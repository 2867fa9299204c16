"""``GET /v1/control/config/stream``: the tenant's bundle pushed over Server-Sent Events.

Frames (``trulayer_sdk.policy.sse``): ``event: bundle`` (``id:`` the ETag, ``data:`` the
bundle) on connect and after every change of the tenant's bundle; ``event: signals`` (the
tenant's live windows, ``Signals.to_json``) when they changed, at most every
``CONTROL_SIGNALS_PUSH_SECONDS``; a ``: heartbeat`` comment after
``CONTROL_STREAM_HEARTBEAT_SECONDS`` of silence. Changes coalesce: a stream that wakes sends the
bundle as it is then (never a queue of stale ones).

Bounds: at most ``CONTROL_STREAM_MAX_PER_TENANT`` open streams per tenant (429
``too_many_streams``) and ``CONTROL_STREAM_MAX`` per replica (503 + Retry-After); a client
that does not take a frame within ``CONTROL_STREAM_WRITE_TIMEOUT_SECONDS`` is dropped (it
reconnects and gets the current bundle); a stream ends after ``CONTROL_STREAM_MAX_SECONDS``
(the client reconnects and is authenticated again), and at once when its API key is revoked
or rotated. On shutdown every stream ends so the server stops promptly.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import orjson
from aiohttp import web
from prometheus_client import Counter, Gauge

from gateway.auth import Principal
from gateway.live_signals import LiveSignals
from gateway.policy_bundles import PolicyBundles
from gateway.settings import GatewaySettings
from trulayer_common.config import ConfigState
from trulayer_common.errors import ApiError, unavailable
from trulayer_common.logging import get_logger
from trulayer_sdk.policy.sse import comment, frame

log = get_logger(__name__)
OPEN = Gauge("trulayer_gateway_config_streams", "open config streams")
DROPPED = Counter("trulayer_gateway_config_streams_dropped_total", "config streams ended by the server", ["why"])


class Subscription:
    __slots__ = ("closed", "tenant_id", "wake")

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.wake = asyncio.Event()
        self.closed = False


class StreamHub:
    """Open streams by tenant; :meth:`changed` (a config listener) wakes a tenant's streams."""

    def __init__(self, max_streams: int, max_per_tenant: int) -> None:
        self._max = max_streams
        self._max_per_tenant = max_per_tenant
        self._by_tenant: dict[str, set[Subscription]] = {}
        self._count = 0
        self._closing = False

    def changed(self, tenant_id: str) -> None:
        for sub in self._by_tenant.get(tenant_id, ()):
            sub.wake.set()

    def open(self, tenant_id: str) -> Subscription:
        if self._closing or self._count >= self._max:
            raise unavailable("Too many open config streams on this server; retry", 5, code="too_many_streams")
        subs = self._by_tenant.setdefault(tenant_id, set())
        if len(subs) >= self._max_per_tenant:
            raise ApiError(
                429,
                f"At most {self._max_per_tenant} open config streams per tenant",
                "too_many_streams",
                extra={"retry_after_seconds": 30},
                headers={"Retry-After": "30"},
            )
        sub = Subscription(tenant_id)
        subs.add(sub)
        self._count += 1
        OPEN.inc()
        return sub

    def close(self, sub: Subscription) -> None:
        subs = self._by_tenant.get(sub.tenant_id)
        if subs is not None and sub in subs:
            subs.discard(sub)
            self._count -= 1
            OPEN.dec()
            if not subs:
                del self._by_tenant[sub.tenant_id]

    def shutdown(self) -> None:
        self._closing = True
        for subs in self._by_tenant.values():
            for sub in subs:
                sub.closed = True
                sub.wake.set()


def key_still_valid(state: ConfigState, principal: Principal) -> bool:
    """A key's stream ends when the key is revoked or rotated (sessions: by duration only)."""
    key = principal.api_key
    if key is None:
        return True
    current = state.api_keys.get(key.id)
    return current is not None and current.revoked_at is None and current.key_hash == key.key_hash


class ConfigStream:
    """The loop of one client's stream: writes what changed, heartbeats, ends on any bound."""

    def __init__(
        self, settings: GatewaySettings, state: ConfigState, bundles: PolicyBundles, live: LiveSignals
    ) -> None:
        self.heartbeat = settings.control_stream_heartbeat_seconds
        self.write_timeout = settings.control_stream_write_timeout_seconds
        self.max_seconds = settings.control_stream_max_seconds
        self.signals_every = settings.control_signals_push_seconds
        self._state = state
        self._bundles = bundles
        self._live = live

    async def _write(self, request: web.Request, response: web.StreamResponse, data: bytes) -> bool:
        try:
            await asyncio.wait_for(response.write(data), self.write_timeout)
            return True
        except TimeoutError:
            DROPPED.labels("slow_client").inc()
            log.info("config_stream_slow_client_dropped")
        except (ConnectionError, RuntimeError):
            DROPPED.labels("disconnected").inc()
        if request.transport is not None:
            request.transport.abort()
        return False

    async def run(
        self, request: web.Request, response: web.StreamResponse, sub: Subscription, principal: Principal
    ) -> None:
        tenant_id = principal.tenant.id
        own_project = principal.api_key.project_id if principal.api_key is not None else None
        started = last_write = last_signals = time.monotonic()
        sent_etag: str | None = None
        sent_signals = -1
        while not sub.closed:
            sub.wake.clear()
            now = time.monotonic()
            if not key_still_valid(self._state, principal):
                DROPPED.labels("key_revoked").inc()
                return
            if now - started >= self.max_seconds:
                DROPPED.labels("max_duration").inc()
                return
            out: list[bytes] = []
            view = self._bundles.view(tenant_id, own_project)
            if view.etag != sent_etag:
                out.append(frame("bundle", view.body.decode(), view.etag))
                sent_etag = view.etag
            revision = self._live.revision(tenant_id)
            signals_due = now - last_signals >= self.signals_every
            if revision != sent_signals and signals_due:
                out.append(frame("signals", orjson.dumps(self._live.of(tenant_id).to_json()).decode()))
                sent_signals, last_signals = revision, now
            if not out and now - last_write >= self.heartbeat:
                out.append(comment("heartbeat"))
            if out:
                if not await self._write(request, response, b"".join(out)):
                    return
                last_write = now
            # Sleep until a change (config or signals wake us), the next heartbeat, or the time
            # a signals change already seen may be pushed, whichever comes first.
            wait = self.heartbeat - (time.monotonic() - last_write)
            if self._live.revision(tenant_id) != sent_signals:
                wait = min(wait, self.signals_every - (time.monotonic() - last_signals))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sub.wake.wait(), max(wait, 0.01))
