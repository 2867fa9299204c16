"""Batch ingest load that behaves like a fail-open SDK: a batch that is not acknowledged (503,
connection refused, timeout) is sent again, with the same trace ids, after a short backoff and
to the next gateway in the list (a load balancer's retry), until it is acknowledged or the
load's drain deadline passes. The ids of every batch answered 201 are *acknowledged*: the
platform promised to keep them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

BATCH = 100


def make_trace(model: str, trace_id: str, i: int) -> dict[str, Any]:
    return {
        "id": trace_id,
        "name": "chat.completion",
        "model": model,
        "latency_ms": 200 + i % 50,
        "cost": 0.0012,
        "input": "Summarise the following support ticket in two sentences ...",
        "output": "The customer is locked out after a password reset.",
        "tags": {"env": "chaos"},
        "spans": [
            {"name": "openai.chat", "type": "llm", "model": model, "prompt_tokens": 120, "completion_tokens": 40}
        ],
    }


@dataclass
class BatchLoad:
    urls: list[str]
    key: str
    model: str
    clients: int = 4
    acked: set[str] = field(default_factory=set)
    unacked: set[str] = field(default_factory=set)
    failures: int = 0
    # (monotonic time the acknowledged attempt was sent, time it was acknowledged)
    acks: list[tuple[float, float]] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        self._tasks = [asyncio.create_task(self._client(c)) for c in range(self.clients)]

    def first_ack_sent_after(self, moment: float) -> float | None:
        """When the first attempt *sent* after ``moment`` was acknowledged (None yet): an
        answer to a request already under way at ``moment`` says nothing about recovery."""
        return min((acked for sent, acked in self.acks if sent > moment), default=None)

    async def wait_ack_after(self, moment: float, timeout: float) -> float:
        """Seconds from ``moment`` to the acknowledgement of the first attempt sent after it."""
        deadline = time.monotonic() + timeout
        while (first := self.first_ack_sent_after(moment)) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.model}: nothing acknowledged within {timeout}s")
            await asyncio.sleep(0.05)
        return first - moment

    async def stop(self, drain_seconds: float = 90.0) -> None:
        """No new batches; the ones under way are retried until acknowledged or ``drain_seconds``."""
        self._drain_deadline = time.monotonic() + drain_seconds
        self._stop.set()
        await asyncio.gather(*self._tasks)
        assert self._session is not None
        await self._session.close()

    async def _client(self, client: int) -> None:
        assert self._session is not None
        seq = 0
        while not self._stop.is_set():
            ids = [f"{self.model}-{client}-{seq}-{i}" for i in range(BATCH)]
            seq += 1
            body = orjson.dumps({"traces": [make_trace(self.model, t, i) for i, t in enumerate(ids)]})
            if await self._send_until_acked(client, body):
                self.acked.update(ids)
            else:
                self.unacked.update(ids)

    async def _send_until_acked(self, client: int, body: bytes) -> bool:
        assert self._session is not None
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        attempt = 0
        while True:
            url = self.urls[(client + attempt) % len(self.urls)]
            sent = time.monotonic()
            try:
                async with self._session.post(f"{url}/v1/ingest/batch", data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status == 201:
                        self.acks.append((sent, time.monotonic()))
                        return True
            except (aiohttp.ClientError, TimeoutError):
                pass
            self.failures += 1
            attempt += 1
            if self._stop.is_set() and time.monotonic() > self._drain_deadline:
                return False
            await asyncio.sleep(min(0.1 * 2**attempt, 2.0))
