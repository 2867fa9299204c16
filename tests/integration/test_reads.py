"""Trace listing: every filter of API.md, cursor pagination, tenant isolation, health routes."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.integration.conftest import Harness, Tenant, eventually, trace
from trulayer_common.schemas.responses import TraceList


async def list_ids(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant, **params: Any) -> list[str]:
    async with http.get(f"{harness.gateway_url}/v1/traces", params=params, headers=tenant.headers) as resp:
        assert resp.status == 200, await resp.text()
        page = TraceList.model_validate(await resp.json())
        return [t.id for t in page.traces]


async def ingest_all(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant, traces: list[dict[str, Any]]):
    async with http.post(
        f"{harness.gateway_url}/v1/ingest/batch", json={"traces": traces}, headers=tenant.headers
    ) as resp:
        assert resp.status == 201

    async def all_stored() -> bool:
        return len(await harness.stored_traces(tenant.id)) == len(traces)

    await eventually(all_stored)


async def test_filters(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant):
    a = trace(
        id="a",
        model="gpt-4o",
        latency_ms=50,
        started_at="2026-01-01T00:00:00Z",
        tags=["prod"],
        spans=[{"name": "llm", "prompt_tokens": 10, "completion_tokens": 10}],
    )
    b = trace(
        id="b",
        model="claude",
        latency_ms=5000,
        error="Request timed out after 30s",
        started_at="2026-01-02T00:00:00Z",
        tags={"env": "prod"},
        session_id="s1",
    )
    c = trace(
        id="c",
        model="claude",
        latency_ms=900,
        error="429 Too Many Requests",
        started_at="2026-01-03T00:00:00Z",
        tags={"env": "dev"},
        prompt_tokens=500,
        completion_tokens=500,
    )
    d = trace(
        id="d",
        model="gpt-4o",
        latency_ms=300,
        error="This model's maximum context length is 8192 tokens",
        started_at="2026-01-04T00:00:00Z",
        session_id="s1",
    )
    e = trace(
        id="e", model="gpt-4o", latency_ms=20, error="could not parse JSON output", started_at="2026-01-05T00:00:00Z"
    )
    await ingest_all(http, harness, tenant, [a, b, c, d, e])

    assert await list_ids(http, harness, tenant) == ["e", "d", "c", "b", "a"]
    assert await list_ids(http, harness, tenant, model="claude") == ["c", "b"]
    assert await list_ids(http, harness, tenant, error="true") == ["e", "d", "c", "b"]
    assert await list_ids(http, harness, tenant, error="false") == ["a"]
    assert await list_ids(http, harness, tenant, failure_type="timeout") == ["b"]
    assert await list_ids(http, harness, tenant, failure_type="rate_limit") == ["c"]
    assert await list_ids(http, harness, tenant, failure_type="context_length") == ["d"]
    assert await list_ids(http, harness, tenant, failure_type="invalid_response") == ["e"]
    assert await list_ids(http, harness, tenant, **{"from": "2026-01-02T00:00:00Z", "to": "2026-01-04"}) == ["c", "b"]
    assert await list_ids(http, harness, tenant, **{"from": "1767398400"}) == ["e", "d", "c"]  # 2026-01-03 unix
    assert await list_ids(http, harness, tenant, latency_min="300", latency_max="900") == ["d", "c"]
    assert await list_ids(http, harness, tenant, token_count_min="20") == ["c", "a"]
    assert await list_ids(http, harness, tenant, token_count_max="0") == ["e", "d", "b"]
    assert await list_ids(http, harness, tenant, tag_key="env") == ["c", "b"]
    assert await list_ids(http, harness, tenant, tag_key="env", tag_value="prod") == ["b"]
    assert await list_ids(http, harness, tenant, tag_key="prod") == ["a"]
    assert await list_ids(http, harness, tenant, session_id="s1") == ["d", "b"]
    assert await list_ids(http, harness, tenant, project_id=tenant.project_id, model="gpt-4o") == ["e", "d", "a"]
    assert await list_ids(http, harness, tenant, project_id="default", model="claude") == ["c", "b"]


async def test_cursor_pagination_visits_every_trace_once(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant):
    # Equal timestamps on purpose: the cursor must break ties by id.
    traces = [trace(id=f"p{i:02d}", started_at="2026-02-01T00:00:00Z") for i in range(7)]
    traces += [trace(id=f"q{i:02d}", started_at=f"2026-02-0{i + 2}T00:00:00Z") for i in range(5)]
    await ingest_all(http, harness, tenant, traces)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "5", **({"cursor": cursor} if cursor else {})}
        async with http.get(f"{harness.gateway_url}/v1/traces", params=params, headers=tenant.headers) as resp:
            page = await resp.json()
        pages += 1
        seen += [t["id"] for t in page["traces"]]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        cursor = page["next_cursor"]
    assert pages == 3
    assert len(seen) == len(set(seen)) == 12
    assert seen[:5] == ["q04", "q03", "q02", "q01", "q00"]
    assert seen[5:] == sorted([t["id"] for t in traces[:7]], reverse=True)


async def test_tenant_isolation(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant):
    other = await harness.new_tenant()
    mine = trace(model="isolation-model")
    await ingest_all(http, harness, tenant, [mine])

    assert await list_ids(http, harness, tenant) == [mine["id"]]
    assert await list_ids(http, harness, other) == []
    assert await list_ids(http, harness, other, model="isolation-model") == []
    async with http.get(f"{harness.gateway_url}/v1/traces/{mine['id']}", headers=other.headers) as resp:
        assert resp.status == 404
    async with http.get(f"{harness.gateway_url}/v1/metrics", params={"hours": "24"}, headers=other.headers) as resp:
        metrics = await resp.json()
    assert metrics["total_traces"] == 0
    assert metrics["by_model"] == []
    async with http.get(f"{harness.gateway_url}/v1/metrics", params={"hours": "24"}, headers=tenant.headers) as resp:
        assert (await resp.json())["total_traces"] == 1
    # The same trace id in another tenant is a different trace, not a duplicate.
    async with http.post(f"{harness.gateway_url}/v1/ingest", json=mine, headers=other.headers) as resp:
        assert resp.status == 201


async def test_health_ready_and_prometheus(http: aiohttp.ClientSession, harness: Harness):
    async with http.get(f"{harness.gateway_url}/healthz") as resp:
        assert resp.status == 200
    async with http.get(f"{harness.gateway_url}/readyz") as resp:
        assert resp.status == 200
        checks = {"kafka": True, "redis": True, "clickhouse": True, "config": True, "signals": True}
        assert (await resp.json())["checks"] == checks
    async with http.get(f"{harness.gateway_url}/metrics") as resp:
        text = await resp.text()
    assert "trulayer_http_requests_total" in text
    assert "trulayer_ingest_rows_written_total" in text


async def test_openapi_document_and_docs_page(http: aiohttp.ClientSession, harness: Harness):
    async with http.get(f"{harness.gateway_url}/openapi.json") as resp:
        assert resp.status == 200
        document = await resp.json()
    assert document["openapi"] == "3.1.0"
    assert {"/v1/ingest", "/v1/ingest/batch", "/v1/traces", "/v1/traces/{trace_id}", "/v1/metrics"} <= set(
        document["paths"]
    )
    schemas = document["components"]["schemas"]
    assert "latency_ms" in schemas["TraceRequest"]["properties"]
    assert schemas["BatchIngestResponse"]["required"] == ["ingested", "ids", "duplicates"]
    ingest = document["paths"]["/v1/ingest"]["post"]
    assert ingest["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/TraceRequest")
    assert "413" in ingest["responses"] and "415" in ingest["responses"]
    async with http.get(f"{harness.gateway_url}/docs") as resp:
        assert resp.status == 200
        assert "/openapi.json" in await resp.text()
