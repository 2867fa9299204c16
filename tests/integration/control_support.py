"""Test support for the control-plane tests: a client of the API as a tenant's owner, member,
viewer or keys, and a reader of the config stream's Server-Sent Events."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from tests.integration.conftest import Harness, Tenant
from trulayer_sdk.policy.sse import SseEvent, SseParser


@dataclass
class Control:
    harness: Harness
    http: aiohttp.ClientSession
    tenant: Tenant
    url: str = ""

    def __post_init__(self) -> None:
        self.url = self.url or self.harness.gateway_url

    def session(self, role: str = "owner") -> dict[str, str]:
        return self.harness.session_headers(self.tenant.id, role=role)

    async def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, expect: int | None = None
    ) -> tuple[int, Any]:
        async with self.http.request(method, self.url + path, json=body, headers=headers or self.session()) as resp:
            raw = await resp.read()
            data = orjson.loads(raw) if raw else None
        if expect is not None:
            assert resp.status == expect, (method, path, resp.status, data)
        return resp.status, data

    async def decide(self, model: str = "gpt-4o", url: str | None = None, **fields: Any) -> dict[str, Any]:
        async with self.http.post(
            (url or self.url) + "/v1/control/decide", json={"model": model, **fields}, headers=self.tenant.headers
        ) as resp:
            assert resp.status == 200, await resp.text()
            data: dict[str, Any] = await resp.json()
            return data

    async def killswitch(self, active: bool, **body: Any) -> dict[str, Any]:
        path = "/v1/control/killswitch/" + ("enable" if active else "disable")
        return (await self.call("POST", path, body or None, expect=200))[1]  # type: ignore[no-any-return]


@dataclass
class EventStream:
    """The frames of one open config stream, read in the background, each with its arrival time."""

    events: list[tuple[float, SseEvent]] = field(default_factory=list)
    comments: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def bundles(self) -> list[dict[str, Any]]:
        return [orjson.loads(e.data) for _, e in self.events if e.event == "bundle"]

    async def wait_for(self, predicate: Any, timeout: float = 10.0, since: int = 0) -> tuple[float, SseEvent]:
        """The first frame from index ``since`` on that matches, waiting for it to arrive."""
        deadline = time.monotonic() + timeout
        seen = since
        while True:
            for arrived, event in self.events[seen:]:
                if predicate(event):
                    return arrived, event
            seen = len(self.events)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching frame within {timeout}s: {self.events!r}")
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), remaining)


@asynccontextmanager
async def config_stream(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> AsyncIterator[EventStream]:
    stream = EventStream()
    headers = {**headers, "Accept": "text/event-stream"}
    async with http.get(
        url + "/v1/control/config/stream", headers=headers, timeout=aiohttp.ClientTimeout(total=None)
    ) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith("text/event-stream")

        async def read() -> None:
            parser = SseParser()
            try:
                async for raw in resp.content:
                    event = parser.feed(raw.decode().rstrip("\r\n"))
                    stream.comments = parser.comments
                    if event is not None:
                        stream.events.append((time.monotonic(), event))
                        stream.arrived.set()
            finally:
                stream.ended.set()

        task = asyncio.create_task(read())
        try:
            yield stream
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
                await task


def killswitch_on(event: SseEvent) -> bool:
    return event.event == "bundle" and bool(orjson.loads(event.data)["killswitch"]["active"])


def killswitch_off(event: SseEvent) -> bool:
    return event.event == "bundle" and not orjson.loads(event.data)["killswitch"]["active"]
