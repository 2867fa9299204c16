"""A trace posted to the gateway is stored by the worker and answered by the read endpoints."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.integration.conftest import Harness, Tenant, eventually, trace
from trulayer_common.schemas.responses import (
    BatchIngestResponse,
    DuplicateResponse,
    IngestResponse,
    MetricsResponse,
    TraceDetail,
)


async def get_trace(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant, trace_id: str) -> Any:
    async with http.get(f"{harness.gateway_url}/v1/traces/{trace_id}", headers=tenant.headers) as resp:
        return await resp.json() if resp.status == 200 else None


async def test_trace_round_trip_with_spans_and_events(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant):
    body = trace(
        input="What is 2+2?",
        output={"answer": 4},
        cost=0.002,
        session_id="sess-1",
        tags={"env": "prod"},
        metadata={"user": "u1"},
        started_at="2026-11-22T10:00:00Z",
        spans=[
            {"name": "retrieve", "type": "retrieval", "latency_ms": 20},
            {"id": "s-llm", "name": "llm", "type": "default", "prompt_tokens": 12, "completion_tokens": 3},
        ],
        events=[{"level": "warning", "message": "slow retrieval", "span_id": "s-llm"}],
    )
    async with http.post(f"{harness.gateway_url}/v1/ingest", json=body, headers=tenant.headers) as resp:
        assert resp.status == 201, await resp.text()
        created = IngestResponse.model_validate(await resp.json())
        assert created.id == body["id"]
        assert resp.headers["X-Request-Id"]

    stored = await eventually(lambda: get_trace(http, harness, tenant, body["id"]))
    TraceDetail.model_validate(stored)
    assert stored["project_id"] == tenant.project_id
    assert stored["input"] == "What is 2+2?"
    assert stored["output"] == {"answer": 4}
    assert stored["tags"] == {"env": "prod"}
    assert stored["metadata"] == {"user": "u1"}
    assert stored["session_id"] == "sess-1"
    assert stored["started_at"] == "2026-11-22T10:00:00Z"
    assert stored["span_count"] == 2
    assert stored["total_token_count"] == 15
    assert {s["name"]: s["type"] for s in stored["spans"]} == {"retrieve": "retrieval", "llm": "other"}
    assert stored["events"][0]["level"] == "warn"
    assert stored["events"][0]["span_id"] == "s-llm"

    params = {"from": "2026-11-22T00:00:00Z", "to": "2026-11-23T00:00:00Z"}

    async def counted() -> Any:
        # Aggregates of past hours come from rollups, written by views within the same insert
        # as the trace: they may show it a few milliseconds after the trace itself is readable.
        async with http.get(f"{harness.gateway_url}/v1/metrics", params=params, headers=tenant.headers) as resp:
            body = await resp.json()
        return body if body["total_traces"] else None

    metrics = await eventually(counted)
    MetricsResponse.model_validate(metrics)
    assert metrics["total_traces"] == 1
    assert metrics["error_count"] == 0
    assert metrics["p50_latency_ms"] == 100
    assert metrics["total_tokens"] == 15


async def test_any_json_value_round_trips_through_the_engine(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant
):
    """input/output/metadata of every JSON type, list tags, nulls and absent fields: the worker
    hands the parsed values to the engine, which stores their JSON text (strings as themselves)."""
    values: list[Any] = [{"messages": [{"role": "user", "content": 'hi "there"'}]}, [1, "a", None], 12.5, True, "plain"]
    body = trace(
        input=values[0],
        output=values[1],
        tags=["prod", "eu"],
        metadata=None,
        name=None,
        model=None,
        spans=[{"name": f"s{i}", "input": v, "output": v, "metadata": {"i": i}} for i, v in enumerate(values)],
        events=[{"message": "m", "metadata": {"k": [1, 2]}, "level": None}],
    )
    async with http.post(f"{harness.gateway_url}/v1/ingest", json=body, headers=tenant.headers) as resp:
        assert resp.status == 201, await resp.text()
    stored = await eventually(lambda: get_trace(http, harness, tenant, body["id"]))
    TraceDetail.model_validate(stored)
    assert (stored["input"], stored["output"]) == (values[0], values[1])
    assert stored["tags"] == ["prod", "eu"]
    assert stored["metadata"] == {}
    assert (stored["name"], stored["model"]) == (None, None)  # stored as "", read as absent
    assert stored["error"] is None and stored["status"] == "success"
    spans = {s["name"]: s for s in stored["spans"]}
    for i, value in enumerate(values):
        assert (spans[f"s{i}"]["input"], spans[f"s{i}"]["output"]) == (value, value)
        assert spans[f"s{i}"]["metadata"] == {"i": i}
        assert spans[f"s{i}"]["prompt_tokens"] == 0 and spans[f"s{i}"]["type"] == "other"
    (event,) = stored["events"]
    assert (event["level"], event["metadata"]) == ("info", {"k": [1, 2]})
    assert event["timestamp"] == stored["started_at"]


async def test_batch_of_traces_and_guardlayer_calls(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant):
    traces = [trace(latency_ms=100 * (i + 1)) for i in range(10)]
    async with http.post(
        f"{harness.gateway_url}/v1/ingest/batch", json={"traces": traces}, headers=tenant.headers
    ) as resp:
        assert resp.status == 201
        body = await resp.json()
    BatchIngestResponse.model_validate(body)
    assert body["ingested"] == 10
    assert body["ids"] == [t["id"] for t in traces]

    calls = [
        {"model": "claude-3-opus", "latency_ms": 1200, "tokens_in": 200, "tokens_out": 80, "cost_usd": 0.008},
        {"model": "gpt-4", "latency_ms": 850, "status": "error", "guardrail_flags": ["pii"]},
    ]
    async with http.post(
        f"{harness.gateway_url}/v1/ingest/batch", json={"calls": calls}, headers=tenant.headers
    ) as resp:
        assert resp.status == 201
        call_body = await resp.json()
    assert call_body["ingested"] == 2
    assert len(call_body["calls"]) == 2

    async def all_counted() -> Any:
        async with http.get(f"{harness.gateway_url}/v1/metrics", params={"hours": "1"}, headers=tenant.headers) as r:
            m = await r.json()
        return m if m["total_traces"] == 12 else None

    metrics = await eventually(all_counted)
    MetricsResponse.model_validate(metrics)
    assert metrics["error_count"] == 1
    assert metrics["total_calls"] == 12
    by_model = {m["model"]: m for m in metrics["by_model"]}
    assert by_model["claude-3-opus"]["total_tokens"] == 280
    assert by_model["gpt-4"]["errors"] == 1
    assert {s["status"]: s["count"] for s in metrics["by_status"]} == {"success": 11, "error": 1}
    assert sum(t["calls"] for t in metrics["timeline"]) == 12

    error_call = await eventually(lambda: get_trace(http, harness, tenant, call_body["calls"][1]["id"]))
    assert error_call["status"] == "error"
    assert error_call["metadata"]["guardrail_flags"] == ["pii"]


async def test_project_named_by_name_and_unknown_project_falls_back(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant
):
    by_name = trace(project_id="default")
    unknown = trace(project_id="my-app")
    async with http.post(
        f"{harness.gateway_url}/v1/ingest/batch", json={"traces": [by_name, unknown]}, headers=tenant.headers
    ) as resp:
        assert resp.status == 201
    first = await eventually(lambda: get_trace(http, harness, tenant, by_name["id"]))
    second = await eventually(lambda: get_trace(http, harness, tenant, unknown["id"]))
    assert first["project_id"] == tenant.project_id
    assert second["project_id"] == tenant.project_id
    assert second["metadata"]["project_name"] == "my-app"


async def test_resent_trace_is_a_duplicate_and_stored_once(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant
):
    body = trace()
    async with http.post(f"{harness.gateway_url}/v1/ingest", json=body, headers=tenant.headers) as resp:
        assert resp.status == 201
    async with http.post(f"{harness.gateway_url}/v1/ingest", json=body, headers=tenant.headers) as resp:
        assert resp.status == 200
        duplicate = await resp.json()
        assert duplicate == {"status": "duplicate", "id": body["id"]}
        DuplicateResponse.model_validate(duplicate)
    # In a batch: the re-sent id and a repeated id within the batch are both duplicates.
    fresh = trace()
    async with http.post(
        f"{harness.gateway_url}/v1/ingest/batch", json={"traces": [body, fresh, fresh]}, headers=tenant.headers
    ) as resp:
        assert resp.status == 201
        batch = await resp.json()
    assert batch["ingested"] == 1
    assert batch["duplicates"] == 2

    async def two_stored() -> Any:
        rows = await harness.stored_traces(tenant.id)
        return rows if len(rows) == 2 else None

    rows = await eventually(two_stored)
    assert sorted(r["id"] for r in rows) == sorted([body["id"], fresh["id"]])
