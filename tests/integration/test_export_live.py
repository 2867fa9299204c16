"""GET /v1/traces/export (streamed pages, the list's filters, several tenants) and
GET /v1/traces/live (frames fed by the trace writer through Redis: per tenant, per project,
heartbeats, many clients, a slow client dropped)."""

from __future__ import annotations

import asyncio
import csv
import io
import socket
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from gateway import export
from gateway.live_tail import LIVE_DROPPED, live_hub_key
from tests.integration.conftest import Harness, Tenant, eventually, trace
from tests.integration.test_bad_input import expect_error


async def ingest(http: aiohttp.ClientSession, url: str, tenant: Tenant, traces: list[dict[str, Any]]) -> None:
    for start in range(0, len(traces), 100):
        async with http.post(
            f"{url}/v1/ingest/batch", json={"traces": traces[start : start + 100]}, headers=tenant.headers
        ) as resp:
            assert resp.status == 201, await resp.text()


async def stored(harness: Harness, tenant: Tenant, n: int) -> None:
    async def done() -> bool:
        return len(await harness.stored_traces(tenant.id)) == n

    await eventually(done, timeout=60)


async def test_export_streams_every_matching_trace_of_the_tenant_only(
    http: aiohttp.ClientSession, harness: Harness, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(export, "PAGE", 300)  # several pages from a small data set
    a, b = await harness.new_tenant(), await harness.new_tenant()
    sent_a = [trace(model="gpt-4o" if i % 3 else "claude", metadata={"i": i}, tags=["x"]) for i in range(1_000)]
    sent_b = [trace(model="gpt-4o") for _ in range(120)]
    await ingest(http, harness.gateway_url, a, sent_a)
    await ingest(http, harness.gateway_url, b, sent_b)
    await stored(harness, a, len(sent_a))
    await stored(harness, b, len(sent_b))

    url = f"{harness.gateway_url}/v1/traces/export"
    async with http.get(url, params={"format": "jsonl"}, headers=a.headers) as resp:
        assert resp.status == 200 and resp.content_type == "application/x-ndjson"
        assert resp.headers.get("Transfer-Encoding") == "chunked"
        lines = (await resp.read()).splitlines()
    rows = [orjson.loads(line) for line in lines]
    assert sorted(r["id"] for r in rows) == sorted(t["id"] for t in sent_a)  # each once, none of b's
    # Newest first, as instants: a whole second is written without a fraction ("…:00Z"), which
    # sorts after "…:00.077Z" as text.
    order = [(datetime.fromisoformat(r["started_at"]), r["id"]) for r in rows]
    assert order == sorted(order, reverse=True)

    params = {"format": "csv", "model": "claude"}
    async with http.get(url, params=params, headers=a.headers) as resp:
        assert resp.status == 200 and resp.content_type == "text/csv"
        table = list(csv.DictReader(io.StringIO(await resp.text())))
    assert list(table[0]) == list(export.CSV_COLUMNS)
    claude = {t["id"] for t in sent_a if t["model"] == "claude"}
    assert {r["id"] for r in table} == claude and len(table) == len(claude)
    assert all(orjson.loads(r["metadata"])["i"] % 3 == 0 and r["tags"] == '["x"]' for r in table)

    async with http.get(url, params={"format": "jsonl", "limit": "450"}, headers=a.headers) as resp:
        limited = (await resp.read()).splitlines()
    assert [orjson.loads(x)["id"] for x in limited] == [r["id"] for r in rows[:450]]

    async with http.get(url, params={"format": "xml"}, headers=a.headers) as resp:
        await expect_error(resp, 400, "invalid_parameter", "format")
    async with http.get(url, params={"latency_min": "x"}, headers=a.headers) as resp:
        await expect_error(resp, 400, "invalid_parameter", "latency_min")
    async with http.get(url) as resp:
        assert resp.status == 401


class Stream:
    """An SSE client: frames and comments as they arrive."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp
        self.frames: list[dict[str, Any]] = []
        self.comments: list[str] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.resp.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("data: "):
                self.frames.append(orjson.loads(line[6:]))
            elif line.startswith(":"):
                self.comments.append(line[1:].strip())

    async def close(self) -> None:
        self.task.cancel()
        self.resp.close()


@pytest.fixture
async def live_gateway(harness: Harness) -> AsyncIterator[tuple[web.Application, str]]:
    settings = harness.gateway_settings.model_copy(
        update={
            "live_heartbeat_seconds": 0.3,
            "live_client_buffer": 2,
            "live_max_clients_per_tenant": 12,
            "live_send_buffer_bytes": 4096,
            "live_write_timeout_seconds": 2.0,
        }
    )
    app, runner, url = await harness.start_gateway(settings)
    yield app, url
    await runner.cleanup()


async def connect(http: aiohttp.ClientSession, url: str, tenant: Tenant, **params: str) -> Stream:
    resp = await http.get(
        f"{url}/v1/traces/live", params=params, headers=tenant.headers, timeout=aiohttp.ClientTimeout()
    )
    assert resp.status == 200 and resp.content_type == "text/event-stream"
    return Stream(resp)


async def test_live_frames_reach_the_tenants_clients_and_no_other(
    http: aiohttp.ClientSession, harness: Harness, live_gateway: tuple[web.Application, str]
):
    app, url = live_gateway
    a, b = await harness.new_tenant(), await harness.new_tenant()
    many = [await connect(http, url, a) for _ in range(10)]
    only_b = await connect(http, url, b)
    await eventually(lambda: asyncio.sleep(1.2, result=True))  # the workers learn who listens (1 s cache)
    sent_a = [trace(name=f"a{i}", latency_ms=i) for i in range(30)]
    sent_b = [trace(name="b") for _ in range(5)]
    await ingest(http, url, a, sent_a)
    await ingest(http, url, b, sent_b)
    await eventually(
        lambda: asyncio.sleep(0, result=all(len(s.frames) >= 30 for s in many) and len(only_b.frames) >= 5)
    )
    for stream in many:
        assert sorted(f["trace_id"] for f in stream.frames) == sorted(t["id"] for t in sent_a)
    assert sorted(f["trace_id"] for f in only_b.frames) == sorted(t["id"] for t in sent_b)
    frame = next(f for f in many[0].frames if f["trace_id"] == sent_a[7]["id"])
    assert frame["name"] == "a7" and frame["latency_ms"] == 7 and frame["status"] == "success"
    assert frame["project_id"] == a.project_id and frame["created_at"].endswith("Z")
    assert all(s.comments and s.comments[0] == "connected" for s in many)
    await asyncio.sleep(0.5)
    assert "heartbeat" in only_b.comments  # idle streams get heartbeats
    for stream in (*many, only_b):
        await stream.close()
    await eventually(lambda: asyncio.sleep(0, result=app[live_hub_key].clients_of(a.id) == 0))


async def test_live_project_filter_and_the_per_tenant_cap(
    http: aiohttp.ClientSession, harness: Harness, live_gateway: tuple[web.Application, str]
):
    _, url = live_gateway
    tenant = await harness.new_tenant()
    other_project = f"p-{tenant.id[:6]}"
    narrowed = await connect(http, url, tenant, project_id=tenant.project_id)
    await asyncio.sleep(1.2)
    sent = [trace(), trace(project_id=other_project)]  # the second lands in the default project too
    await ingest(http, url, tenant, sent)
    await eventually(lambda: asyncio.sleep(0, result=len(narrowed.frames) >= 2))
    assert {f["project_id"] for f in narrowed.frames} == {tenant.project_id}
    async with http.get(f"{url}/v1/traces/live", params={"project_id": "not-mine"}, headers=tenant.headers) as resp:
        assert resp.status in (403, 404)
    extra = [await connect(http, url, tenant) for _ in range(11)]
    async with http.get(f"{url}/v1/traces/live", headers=tenant.headers) as resp:
        await expect_error(resp, 429, "too_many_live_clients")
    for stream in (narrowed, *extra):
        await stream.close()


async def test_a_slow_live_client_is_dropped_and_the_others_keep_receiving(
    http: aiohttp.ClientSession, harness: Harness, live_gateway: tuple[web.Application, str]
):
    app, url = live_gateway
    tenant = await harness.new_tenant()
    fast = await connect(http, url, tenant)
    # A client that connects and never reads, with a tiny receive window.
    port = int(url.rsplit(":", 1)[1])
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    slow.connect(("127.0.0.1", port))
    slow.sendall(f"GET /v1/traces/live HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tenant.key}\r\n\r\n".encode())
    await eventually(lambda: asyncio.sleep(0, result=app[live_hub_key].clients_of(tenant.id) == 2))
    dropped_before = LIVE_DROPPED._value.get()
    await asyncio.sleep(1.2)
    sent = [trace(name="x" * 200) for _ in range(1_500)]
    await ingest(http, url, tenant, sent)
    await eventually(lambda: asyncio.sleep(0, result=app[live_hub_key].clients_of(tenant.id) == 1), timeout=30)
    assert LIVE_DROPPED._value.get() > dropped_before
    await eventually(lambda: asyncio.sleep(0, result=len(fast.frames) >= len(sent)), timeout=30)
    assert len({f["trace_id"] for f in fast.frames}) == len(sent)
    slow.close()
    await fast.close()


async def test_live_needs_credentials(http: aiohttp.ClientSession, harness: Harness):
    async with http.get(f"{harness.gateway_url}/v1/traces/live") as resp:
        assert resp.status == 401
