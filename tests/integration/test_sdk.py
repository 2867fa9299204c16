"""The Python SDK against the real stack: traces, spans and feedback arrive; with the gateway
stopped the application's calls return at once, memory stays bounded and nothing raises; once
it is back the buffered traces arrive; overflow drops the oldest and counts them; an archived
project is a permanent 403.

The SDK's calls are blocking (the application's side), so they run in threads while the
gateway serves on the test's event loop.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from typing import Any

import aiohttp
from aiohttp import web

from gateway.app import create_app as create_gateway
from tests.integration.conftest import Harness, Tenant, eventually, free_port
from trulayer_common.schemas.responses import TraceDetail, TraceList
from trulayer_sdk import ProjectArchivedError, TruLayerClient


def sdk(endpoint: str, tenant: Tenant, **kw: Any) -> TruLayerClient:
    kw.setdefault("flush_interval", 0.1)
    kw.setdefault("project_name", "default")
    return TruLayerClient(api_key=tenant.key, endpoint=endpoint, **kw)


async def listed(http: aiohttp.ClientSession, base: str, tenant: Tenant) -> list[Any]:
    """Every trace of the tenant (all pages)."""
    traces: list[Any] = []
    params = {"limit": "200"}
    while True:
        async with http.get(f"{base}/v1/traces", params=params, headers=tenant.headers) as resp:
            page = TraceList.model_validate(await resp.json())
        traces += page.traces
        if not page.next_cursor:
            return traces
        params["cursor"] = page.next_cursor


async def serve_gateway(harness: Harness, port: int) -> web.AppRunner:
    runner = web.AppRunner(create_gateway(harness.gateway_settings, clickhouse=harness.clickhouse), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def test_traces_spans_and_feedback_through_the_sdk(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant
) -> None:
    tl = sdk(harness.gateway_url, tenant)

    def app() -> str:
        with tl.trace("support-answer", session_id="s-42", tags=["beta"], metadata={"user": "u1"}) as t:
            t.set_input("How do I reset my password?")
            with t.span("search", span_type="retrieval") as s:
                s.set_output({"hits": 3})
            with t.span("generate", span_type="llm") as s:
                s.set_model("gpt-4o-mini")
                s.set_tokens(prompt=120, completion=40)
                s.set_cost(0.0002)
            t.set_output("Use the 'forgot password' link.")
        tl.feedback(t.id, "good", score=1.0, comment="helpful")
        tl.flush(30)
        return t.id

    trace_id = await asyncio.to_thread(app)

    async def stored() -> Any:
        async with http.get(f"{harness.gateway_url}/v1/traces/{trace_id}", headers=tenant.headers) as resp:
            return TraceDetail.model_validate(await resp.json()).model_dump() if resp.status == 200 else None

    trace = await eventually(stored)
    assert (trace["name"], trace["session_id"], trace["tags"]) == ("support-answer", "s-42", ["beta"])
    assert trace["project_id"] == tenant.project_id  # the project's name resolved by the gateway
    assert trace["input"] == "How do I reset my password?" and trace["metadata"]["user"] == "u1"
    assert (trace["model"], trace["cost"], trace["total_token_count"]) == ("gpt-4o-mini", 0.0002, 160)
    assert {s["name"]: s["type"] for s in trace["spans"]} == {"search": "retrieval", "generate": "llm"}
    stats = tl.stats()
    # The feedback left right after its trace: answered 404 until the trace was stored, retried.
    assert (stats.sent, stats.rejected, stats.dropped) == (2, 0, 0)

    async def with_feedback() -> Any:
        found = await stored()
        return found if found and found["feedback"] else None

    (feedback,) = (await eventually(with_feedback))["feedback"]
    assert (feedback["label"], feedback["score"], feedback["comment"]) == ("good", 1.0, "helpful")
    await asyncio.to_thread(tl.shutdown, 1)


async def test_gateway_down_then_back_the_buffer_delivers(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    tl = sdk(base, tenant, max_buffer=500)  # nothing listens there yet: the gateway is "down"

    def record(prefix: str, count: int) -> list[float]:
        durations = []
        for i in range(count):
            started = time.perf_counter()
            with tl.trace(f"{prefix}-{i}") as t, t.span("llm", "llm") as s:
                s.set_model("m")
            durations.append(time.perf_counter() - started)
        return durations

    tracemalloc.start()
    durations = await asyncio.to_thread(record, "down", 300)
    _, peak_small = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    await asyncio.to_thread(record, "flood", 3_000)
    _, peak_large = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    durations.sort()
    stats = tl.stats()
    print(
        f"\ngateway down: recording p50 {durations[150] * 1e6:.0f} µs, p99 {durations[297] * 1e6:.0f} µs; "
        f"traced memory peak {peak_small / 1e6:.2f} MB after 300 traces, {peak_large / 1e6:.2f} MB over 3,000 more "
        f"(max_buffer=500); {stats.failed_requests} failed attempts"
    )
    # Bounded: never more than max_buffer held; everything beyond was dropped oldest-first, counted.
    assert stats.pending <= 500 and stats.buffer_overflow == 3_300 - stats.pending
    assert stats.sent == 0 and stats.failed_requests >= 1

    runner = await serve_gateway(harness, port)
    try:
        result = await asyncio.to_thread(tl.flush, 30)
        assert result.pending == 0 and result.sent == stats.pending

        async def arrived() -> list[Any]:
            traces = await listed(http, base, tenant)
            return traces if len(traces) == result.sent else []

        traces = await eventually(arrived, timeout=30)
        # The newest traces survived the overflow: the last `max_buffer` recorded.
        assert {t.name for t in traces} == {f"flood-{i}" for i in range(3_000 - result.sent, 3_000)}
    finally:
        await asyncio.to_thread(tl.shutdown, 1)
        await runner.cleanup()


async def test_overflow_drops_the_oldest_and_counts_them(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant
) -> None:
    port = free_port()
    tl = sdk(f"http://127.0.0.1:{port}", tenant, max_buffer=10)

    def record() -> None:
        for i in range(25):
            with tl.trace(f"t{i:02d}"):
                pass

    await asyncio.to_thread(record)
    stats = tl.stats()
    assert (stats.pending, stats.buffer_overflow, stats.dropped) == (10, 15, 15)
    runner = await serve_gateway(harness, port)
    try:
        assert (await asyncio.to_thread(tl.flush, 30)).sent == 10

        async def arrived() -> set[str]:
            names = {t.name for t in await listed(http, f"http://127.0.0.1:{port}", tenant)}
            return names if len(names) == 10 else set()

        assert await eventually(arrived) == {f"t{i:02d}" for i in range(15, 25)}
    finally:
        await asyncio.to_thread(tl.shutdown, 1)
        await runner.cleanup()


async def test_archived_project_is_a_permanent_403(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant):
    owner = harness.session_headers(tenant.id)
    async with http.post(f"{harness.gateway_url}/v1/projects", json={"name": "old"}, headers=owner) as resp:
        project = await resp.json()
    async with http.post(f"{harness.gateway_url}/v1/projects/{project['id']}/archive", headers=owner) as resp:
        assert resp.status == 200, await resp.text()
    tl = sdk(harness.gateway_url, tenant, project_name=project["id"])

    def attempt() -> Any:
        for _ in range(3):
            with tl.trace("nope"):
                pass
        return tl.flush(10)

    async def latched() -> Any:  # the gateway applies the archive from the config log
        result = await asyncio.to_thread(attempt)
        return result if tl.fatal_error is not None else None

    result = await eventually(latched, timeout=20, interval=0.2)
    assert isinstance(tl.fatal_error, ProjectArchivedError)
    assert result.pending == 0 and tl.stats().disabled
    await asyncio.to_thread(attempt)  # recording goes on without raising; nothing is sent
    assert tl.stats().sent == 0
    await asyncio.to_thread(tl.shutdown, 1)
