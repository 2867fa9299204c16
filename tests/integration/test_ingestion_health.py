"""GET /v1/ingestion-health: request outcomes counted per tenant (2xx and the 4xx codes), traces
stored and their ingest lag, dead letters of the tenant, last trace time."""

from __future__ import annotations

import uuid

import aiohttp
import orjson

from gateway.ingest_outcomes import ingest_outcomes_key
from tests.integration.conftest import Harness, Tenant, eventually, trace
from tests.integration.test_bad_input import expect_error
from trulayer_common.schemas.reads import IngestionHealth
from trulayer_common.topics import traces as trace_records


async def health(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant, **params: str) -> dict:
    await harness.gateway_app[ingest_outcomes_key].flush()  # what the periodic flush does
    async with http.get(f"{harness.gateway_url}/v1/ingestion-health", params=params, headers=tenant.headers) as resp:
        assert resp.status == 200, await resp.text()
        body = await resp.json()
    IngestionHealth.model_validate(body)
    return dict(body)


async def test_outcomes_lag_and_last_trace(http: aiohttp.ClientSession, harness: Harness):
    tenant, other = await harness.new_tenant(), await harness.new_tenant()
    empty = await health(http, harness, tenant, window="1h")
    assert empty["requests"]["total"] == 0 and empty["traces_stored"] == 0 and empty["last_trace_at"] is None
    url = f"{harness.gateway_url}/v1/ingest"
    for _ in range(6):
        async with http.post(url, json=trace(), headers=tenant.headers) as resp:
            assert resp.status == 201
    for _ in range(3):
        async with http.post(url, json=trace(latency_ms=-1), headers=tenant.headers) as resp:
            assert resp.status == 400
    async with http.post(url, data=b"[", headers={**tenant.headers, "Content-Type": "application/json"}) as resp:
        assert resp.status == 400
    async with http.post(url, data=b"{}", headers={**tenant.headers, "Content-Type": "text/plain"}) as resp:
        assert resp.status == 415
    async with http.post(url, json=trace(), headers=other.headers) as resp:
        assert resp.status == 201

    async def all_stored() -> dict | None:
        body = await health(http, harness, tenant, window="1h")
        return body if body["traces_stored"] == 6 else None

    body = await eventually(all_stored)
    assert body["requests"] == {"total": 11, "accepted": 6, "rejected": 5, "success_rate": 0.5455, "error_rate": 0.4545}
    assert body["top_errors"][0] == {"status": 400, "code": "validation_error", "count": 3}
    assert {(e["status"], e["code"]) for e in body["top_errors"]} == {
        (400, "validation_error"),
        (400, "malformed_json"),
        (415, "unsupported_media_type"),
    }
    lag = body["ingest_lag_ms"]
    assert 0 <= lag["p50"] <= lag["p95"] <= lag["p99"] <= lag["max"] < 60_000
    assert body["last_trace_at"] is not None and body["window"] == "1h"
    # Per project: the tenant's default project holds them all; another project of its has none.
    assert (await health(http, harness, tenant, project_id=tenant.project_id))["traces_stored"] == 6
    theirs = await health(http, harness, other, window="7d")
    assert theirs["requests"]["total"] == 1 and theirs["traces_stored"] == 1


async def test_dead_letters_of_the_tenant_are_counted(http: aiohttp.ClientSession, harness: Harness):
    tenant = await harness.new_tenant()
    # A record the trace writer cannot use (a trace without its id): it goes to the DLQ.
    poison = orjson.dumps(
        {
            "schema_version": 1,
            "tenant_id": tenant.id,
            "project_id": tenant.project_id,
            "received_at": "2026-11-30T00:00:00Z",
            "request_id": uuid.uuid4().hex,
            "payload": {"kind": "traces", "traces": [{"project_id": tenant.project_id}]},
        }
    )
    await harness._producer.send_and_wait(trace_records.TOPIC, value=poison, key=b"poison")

    async def counted() -> dict | None:
        body = await health(http, harness, tenant)
        return body if body["dead_letters"]["in_window"] >= 1 else None

    body = await eventually(counted, timeout=30)
    assert body["dead_letters"] == {"in_window": 1, "total": 1}
    other = await harness.new_tenant()
    assert (await health(http, harness, other))["dead_letters"] == {"in_window": 0, "total": 0}


async def test_bad_parameters(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant):
    url = f"{harness.gateway_url}/v1/ingestion-health"
    async with http.get(url, params={"window": "2h"}, headers=tenant.headers) as resp:
        await expect_error(resp, 400, "invalid_parameter", "window")
    async with http.get(url) as resp:
        assert resp.status == 401
