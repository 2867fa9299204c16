"""``GET /v1/traces/live``: Server-Sent Events, one frame per newly stored trace of the tenant.

Fed from the trace stream, never from ClickHouse: the ingest-worker publishes each stored
batch on the tenant's Redis channel (:mod:`trulayer_common.live`); this gateway's
:class:`LiveHub` subscribes to the channels of the tenants it has clients for (one pub/sub
connection per gateway, one subscription per tenant) and fans frames out to each client's
bounded queue. A message (one stored batch of the tenant: its frames, decoded once and shared by
every client) is queued by reference; a client more than ``LIVE_CLIENT_BUFFER`` messages behind,
or whose socket does not take a write for ``LIVE_WRITE_TIMEOUT_SECONDS``, is dropped (its stream
ends): a slow reader never holds memory without bound. Each live socket's kernel send buffer is
capped too (``LIVE_SEND_BUFFER_BYTES``). Idle streams carry a heartbeat comment every
``LIVE_HEARTBEAT_SECONDS``. Frames are ``data: {...}`` lines (API.md), ``project_id`` narrows
them to one project; another tenant's frame never reaches a client (channels are per tenant).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import Counter, Gauge
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from gateway.auth import project_for_read
from gateway.params import get_str
from gateway.resources import config_state, principal_key, settings_key
from trulayer_common import live
from trulayer_common.errors import ApiError
from trulayer_common.logging import get_logger

log = get_logger(__name__)
LIVE_CLIENTS = Gauge("trulayer_live_clients", "live-tail clients connected to this gateway")
LIVE_DROPPED = Counter("trulayer_live_clients_dropped_total", "live-tail clients dropped for falling behind")
_ANNOUNCE_SECONDS = live.LISTENER_TTL_SECONDS / 3


Frames = list[dict[str, Any]]


@dataclass(eq=False)
class LiveClient:
    tenant_id: str
    project_id: str | None
    queue: asyncio.Queue[Frames]
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, frames: Frames) -> None:
        if self.closed.is_set():
            return
        try:
            self.queue.put_nowait(frames)
        except asyncio.QueueFull:
            self.drop()

    def wanted(self, frames: Frames) -> Frames:
        if self.project_id is None:
            return frames
        return [f for f in frames if f.get("project_id") == self.project_id]

    def drop(self) -> None:
        """Fell behind: its stream ends."""
        if not self.closed.is_set():
            LIVE_DROPPED.inc()
            self.closed.set()

    def end(self) -> None:
        """The gateway stops: its stream ends (the client reconnects elsewhere)."""
        self.closed.set()


class LiveHub:
    """This gateway's live clients, per tenant, and its one Redis subscription."""

    def __init__(self, redis: Redis, announcer: Redis, *, client_buffer: int, max_per_tenant: int) -> None:
        self._pubsub: PubSub = redis.pubsub(ignore_subscribe_messages=True)
        self._announcer = announcer
        self._client_buffer = client_buffer
        self._max_per_tenant = max_per_tenant
        self._clients: dict[str, set[LiveClient]] = {}
        self._changes: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._subscribed: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []

    def clients_of(self, tenant_id: str) -> int:
        return len(self._clients.get(tenant_id, ()))

    def join(self, tenant_id: str, project_id: str | None) -> LiveClient:
        clients = self._clients.setdefault(tenant_id, set())
        if len(clients) >= self._max_per_tenant:
            raise ApiError(
                429,
                f"At most {self._max_per_tenant} live-tail connections per tenant on one gateway",
                "too_many_live_clients",
            )
        client = LiveClient(tenant_id, project_id, asyncio.Queue(self._client_buffer))
        clients.add(client)
        LIVE_CLIENTS.inc()
        if len(clients) == 1:
            self._changes.put_nowait(("subscribe", tenant_id))
        return client

    def leave(self, client: LiveClient) -> None:
        clients = self._clients.get(client.tenant_id)
        if clients is None or client not in clients:
            return
        clients.discard(client)
        LIVE_CLIENTS.dec()
        if not clients:
            del self._clients[client.tenant_id]
            self._changes.put_nowait(("unsubscribe", client.tenant_id))

    def shutdown(self) -> None:
        """End every stream (``on_shutdown``: before the server waits for open requests)."""
        for clients in self._clients.values():
            for client in clients:
                client.end()

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="live-listen"),
            asyncio.create_task(self._announce(), name="live-announce"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _apply_changes(self) -> None:
        while not self._changes.empty():
            action, tenant = self._changes.get_nowait()
            wanted = tenant in self._clients
            if action == "subscribe" and wanted and tenant not in self._subscribed:
                await self._pubsub.subscribe(live.channel(tenant))
                self._subscribed.add(tenant)
                await live.announce(self._announcer, [tenant])  # workers publish for it from now on
            elif action == "unsubscribe" and not wanted and tenant in self._subscribed:
                await self._pubsub.unsubscribe(live.channel(tenant))
                self._subscribed.discard(tenant)

    async def _listen(self) -> None:
        """The one task reading the subscription (and changing it, so the connection is never
        used by two tasks at once)."""
        while True:
            try:
                await self._apply_changes()
                if not self._subscribed:
                    action = await self._changes.get()
                    self._changes.put_nowait(action)
                    continue
                message = await self._pubsub.get_message(timeout=0.05)
                if message is None or message.get("type") != "message":
                    continue
                tenant = live.tenant_of(_text(message["channel"]))
                frames = live.decode(message["data"])
                if frames:
                    for client in tuple(self._clients.get(tenant, ())):
                        client.offer(frames)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: keep trying; clients get heartbeats meanwhile
                log.warning("live_subscription_failed", error=repr(exc)[:300])
                self._subscribed.clear()
                for tenant in self._clients:
                    self._changes.put_nowait(("subscribe", tenant))
                await asyncio.sleep(1.0)

    async def _announce(self) -> None:
        while True:
            await asyncio.sleep(_ANNOUNCE_SECONDS)
            try:
                await live.announce(self._announcer, list(self._clients))
            except Exception as exc:
                log.warning("live_announce_failed", error=repr(exc)[:300])


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


live_hub_key = web.AppKey("live_hub", LiveHub)


async def end_live_streams(app: web.Application) -> None:
    hub = app.get(live_hub_key)
    if hub is not None:
        hub.shutdown()


async def live_hub_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    # Its own connections: a subscription blocks its connection, and reads must not time out.
    redis = Redis.from_url(settings.redis_url, socket_connect_timeout=1.0)
    hub = LiveHub(
        redis,
        redis,
        client_buffer=settings.live_client_buffer,
        max_per_tenant=settings.live_max_clients_per_tenant,
    )
    await hub.start()
    app[live_hub_key] = hub
    yield
    await hub.stop()
    await redis.aclose()


async def _write(response: web.StreamResponse, data: bytes, timeout: float) -> None:
    await asyncio.wait_for(response.write(data), timeout)


async def live_traces(request: web.Request) -> web.StreamResponse:
    principal = request[principal_key]
    settings = request.app[settings_key]
    project = get_str(request.query, "project_id")
    project_id = project_for_read(request.app[config_state], principal, project).id if project else None
    hub = request.app[live_hub_key]
    client = hub.join(principal.tenant.id, project_id)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    try:
        await response.prepare(request)
        sock = request.transport.get_extra_info("socket") if request.transport is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, settings.live_send_buffer_bytes)
        timeout = settings.live_write_timeout_seconds
        await _write(response, b": connected\n\n", timeout)
        closed = asyncio.ensure_future(client.closed.wait())
        try:
            while not client.closed.is_set():
                getter = asyncio.ensure_future(client.queue.get())
                done, _ = await asyncio.wait(
                    {getter, closed}, timeout=settings.live_heartbeat_seconds, return_when=asyncio.FIRST_COMPLETED
                )
                if getter not in done:
                    getter.cancel()
                    if not done:
                        await _write(response, b": heartbeat\n\n", timeout)
                    continue
                frames = client.wanted(getter.result())
                if frames:
                    await _write(response, b"".join(b"data: " + orjson.dumps(f) + b"\n\n" for f in frames), timeout)
        finally:
            closed.cancel()
    except TimeoutError:
        client.drop()  # the socket took no write for too long: a stalled reader
    except ConnectionError:
        pass  # the client went away
    finally:
        hub.leave(client)
    return response
