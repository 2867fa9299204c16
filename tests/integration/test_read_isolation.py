"""Reads never stall writes, and reads are bounded (issue 10): the embedded engine's writer has
its own connection and thread, readers a pool with a queue limit (503 + Retry-After beyond it)
and a time limit (504)."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app as create_gateway
from gateway.read_errors import read_errors_middleware
from tests.integration.conftest import Harness, Tenant, free_port
from tests.integration.test_bad_input import expect_error
from trulayer_common.clickhouse import ClickHouse, create_clickhouse
from trulayer_common.clickhouse.client import READS_HELD, ReadCapacityError, ReadPolicy, ReadTimeoutError
from trulayer_common.http import request_id_middleware


def second_client(harness: Harness, policy: ReadPolicy) -> ClickHouse:
    """Another client of the session's engine (same path: chDB allows that in one process)."""
    return create_clickhouse(harness.base.clickhouse_url, harness.clickhouse.database, policy)


async def test_inserts_finish_while_a_long_read_runs(harness: Harness):
    ch = second_client(harness, ReadPolicy(concurrency=1, queue=0, max_seconds=30))
    table = f"iso_{uuid.uuid4().hex[:8]}"
    try:
        await ch.command(f"CREATE TABLE {ch.database}.{table} (x UInt64) ENGINE = MergeTree ORDER BY x")
        read = asyncio.create_task(ch.query("SELECT sleep(2) AS s"))
        await asyncio.sleep(0.2)  # the read holds the only reader now
        for n in range(20):
            await ch.insert_json_rows(table, [{"x": n}])
        assert not read.done(), "the 20 inserts did not wait for the read"
        with pytest.raises(ReadCapacityError) as refused:
            await ch.query("SELECT 1")  # the pool is busy and its queue (0) is full: refused at once
        assert refused.value.retry_after >= 1
        await read
        assert (await ch.query(f"SELECT count() AS n FROM {ch.database}.{table}"))[0]["n"] == 20
    finally:
        await ch.command(f"DROP TABLE IF EXISTS {ch.database}.{table}")
        ch.close()


async def test_queued_reads_wait_their_turn_and_a_caller_giving_up_keeps_the_slot(harness: Harness):
    ch = second_client(harness, ReadPolicy(concurrency=1, queue=2, max_seconds=30))
    try:
        first = asyncio.create_task(ch.query("SELECT sleep(1) AS s"))
        await asyncio.sleep(0.1)
        queued = asyncio.create_task(ch.query("SELECT 2 AS n"))
        await asyncio.sleep(0.05)
        assert not queued.done()
        first.cancel()  # the caller gives up: the engine call still runs, and holds its reader
        await asyncio.sleep(0.1)
        assert not queued.done()
        assert (await queued)[0]["n"] == 2
    finally:
        ch.close()


async def test_reads_stop_at_their_time_limit(harness: Harness):
    ch = second_client(harness, ReadPolicy(concurrency=1, queue=0, max_seconds=0.3))
    try:
        with pytest.raises(ReadTimeoutError):
            await ch.query("SELECT count() FROM numbers(100000000000)")
        assert (await ch.query("SELECT 1 AS n"))[0]["n"] == 1  # the reader is free again
        assert (await ch.query("SELECT sleep(0.5) AS s", max_seconds=None))[0]["s"] == 0  # unlimited when asked
    finally:
        ch.close()


async def test_a_full_read_pool_is_a_503_with_retry_after(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant
):
    ch = second_client(harness, ReadPolicy(concurrency=1, queue=0, max_seconds=30))
    app = create_gateway(harness.gateway_settings, clickhouse=ch)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}"
    try:
        busy = asyncio.create_task(ch.query("SELECT sleep(1.5) AS s"))
        await asyncio.sleep(0.2)
        async with http.get(f"{url}/v1/traces", headers=tenant.headers) as resp:
            body = await expect_error(resp, 503, "read_capacity")
            assert resp.headers["Retry-After"] == "1" and body["retry_after_seconds"] == 1
        # Ingest does not read: it is served meanwhile.
        async with http.post(f"{url}/v1/ingest", json={"name": "x"}, headers=tenant.headers) as resp:
            assert resp.status == 201
        await busy
        async with http.get(f"{url}/v1/traces", headers=tenant.headers) as resp:
            assert resp.status == 200
    finally:
        await runner.cleanup()
        ch.close()


async def test_a_read_past_its_time_limit_is_a_504():
    async def slow(_: web.Request) -> web.Response:
        raise ReadTimeoutError(10.0)

    async def busy(_: web.Request) -> web.Response:
        raise ReadCapacityError(2)

    app = web.Application(middlewares=[request_id_middleware("t"), read_errors_middleware])
    app.router.add_get("/slow", slow)
    app.router.add_get("/busy", busy)
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/slow")
        body = await expect_error(resp, 504, "query_timeout", "longer than 10 s")
        assert body["request_id"]
        resp = await client.get("/busy")
        await expect_error(resp, 503, "read_capacity")
        assert resp.headers["Retry-After"] == "2"


async def test_lookups_by_key_have_a_reader_of_their_own(harness: Harness):
    ch = second_client(harness, ReadPolicy(concurrency=1, queue=4, max_seconds=30))
    done: list[str] = []

    async def read(name: str, quick: bool) -> None:
        await ch.query("SELECT 1 AS n", quick=quick)
        done.append(name)

    try:
        busy = asyncio.create_task(ch.query("SELECT sleep(1) AS s"))
        await asyncio.sleep(0.1)
        scans = [asyncio.create_task(read(f"scan{i}", False)) for i in range(2)]
        await asyncio.sleep(0.05)
        lookup = asyncio.create_task(read("lookup", True))
        await lookup
        assert not busy.done(), "the lookup had its own reader: it did not wait for the running scan"
        await asyncio.gather(busy, *scans)
        assert done == ["lookup", "scan0", "scan1"]
    finally:
        ch.close()


async def test_sustained_scans_yield_to_a_busy_writer(harness: Harness):
    """With a duty cycle, scans that used up their budget of engine time wait while the writer
    works, and not while it is idle; lookups by key never wait."""
    ch = second_client(harness, ReadPolicy(concurrency=1, queue=8, max_seconds=30, duty_cycle=0.1, burst_seconds=0.05))
    table = f"duty_{uuid.uuid4().hex[:8]}"
    held = READS_HELD._value.get
    try:
        await ch.command(f"CREATE TABLE {ch.database}.{table} (x UInt64) ENGINE = MergeTree ORDER BY x")
        await asyncio.sleep(1.1)  # the writer has been idle for a second
        await ch.query("SELECT sleep(0.3) AS s")  # spends the budget: 0.3 s of engine time
        before = held()
        await ch.query("SELECT 1 AS n")  # nothing written lately: not held back
        assert held() == before
        await ch.query("SELECT sleep(0.3) AS s")
        await ch.insert_json_rows(table, [{"x": 1}])  # the writer works
        lookup = asyncio.create_task(ch.query("SELECT 2 AS n", quick=True))
        scan = asyncio.create_task(ch.query("SELECT 3 AS n"))
        assert (await lookup)[0]["n"] == 2
        assert (await scan)[0]["n"] == 3
        assert held() == before + 1  # the scan waited for its budget; the lookup did not
    finally:
        await ch.command(f"DROP TABLE IF EXISTS {ch.database}.{table}")
        ch.close()
