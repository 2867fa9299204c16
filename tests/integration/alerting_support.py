"""Test support for the alerting tests: a real local webhook receiver that verifies signatures,
and helpers to write rules and webhooks the way the control-engine does (on the config log)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from tests.integration.conftest import free_port
from trulayer_common.webhook_signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify


@dataclass
class Delivery:
    body: dict[str, Any]
    headers: dict[str, str]
    signature_ok: bool
    received_at: float


@dataclass
class Receiver:
    """An aiohttp server on 127.0.0.1: answers the scripted statuses in turn, then 200."""

    secret: str
    url: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    attempts: int = 0
    script: list[int] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.attempts += 1
        status = self.script.pop(0) if self.script else 200
        if 200 <= status < 300:
            ok = verify(
                self.secret, request.headers.get(TIMESTAMP_HEADER, ""), request.headers.get(SIGNATURE_HEADER, ""), raw
            )
            self.deliveries.append(Delivery(orjson.loads(raw), dict(request.headers), ok, time.monotonic()))
        return web.Response(status=status)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@asynccontextmanager
async def receiver(secret: str, script: list[int] | None = None) -> AsyncIterator[Receiver]:
    r = Receiver(secret, script=list(script or []))
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


def ago(seconds: float) -> str:
    return datetime.fromtimestamp(time.time() - seconds, UTC).isoformat()


def new_id() -> str:
    return str(uuid.uuid4())
