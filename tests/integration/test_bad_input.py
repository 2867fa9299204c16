"""The bad-input matrix: every refusal has its documented status and the API's error body."""

from __future__ import annotations

import io
import uuid
from typing import Any

import aiohttp
import orjson
import pytest

from control_engine.tenants import revoke_api_key
from gateway.resources import config_state
from tests.integration.conftest import Harness, Tenant, eventually, trace
from trulayer_common.config import hash_api_key
from trulayer_common.schemas.responses import ErrorBody


async def expect_error(
    resp: aiohttp.ClientResponse, status: int, code: str, error_contains: str = ""
) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert body["code"] == code
    assert isinstance(body["error"], str) and body["error"]
    assert error_contains in body["error"]
    assert body["request_id"] == resp.headers["X-Request-Id"]
    ErrorBody.model_validate(body)  # the documented error shape, nothing else
    return body


@pytest.mark.parametrize("path", ["/v1/ingest", "/v1/ingest/batch"])
async def test_malformed_json_is_400(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant, path: str):
    headers = {**tenant.headers, "Content-Type": "application/json"}
    async with http.post(harness.gateway_url + path, data=b'{"id": ', headers=headers) as resp:
        await expect_error(resp, 400, "malformed_json")
    async with http.post(harness.gateway_url + path, data=b"", headers=headers) as resp:
        await expect_error(resp, 400, "malformed_json")


async def test_schema_mismatch_is_400_naming_the_field(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant):
    async with http.post(
        f"{harness.gateway_url}/v1/ingest", json=trace(latency_ms="slow"), headers=tenant.headers
    ) as resp:
        body = await expect_error(resp, 400, "validation_error", "latency_ms")
    assert body["details"][0]["field"] == "latency_ms"
    async with http.post(
        f"{harness.gateway_url}/v1/ingest/batch",
        json={"traces": [trace(), trace(tags=["x" * 65])]},
        headers=tenant.headers,
    ) as resp:
        body = await expect_error(resp, 400, "validation_error", "traces.1.tags")
    async with http.post(f"{harness.gateway_url}/v1/ingest/batch", json=[1, 2], headers=tenant.headers) as resp:
        await expect_error(resp, 400, "validation_error")


async def test_missing_required_field_is_422(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant):
    async with http.post(
        f"{harness.gateway_url}/v1/ingest", json=trace(spans=[{"type": "llm"}]), headers=tenant.headers
    ) as resp:
        await expect_error(resp, 422, "validation_error", "spans.0.name")
    async with http.post(
        f"{harness.gateway_url}/v1/ingest/batch", json={"calls": [{"model": "gpt-4"}]}, headers=tenant.headers
    ) as resp:
        await expect_error(resp, 422, "validation_error", "calls.0.latency_ms")


@pytest.mark.parametrize("shape", ["traces", "calls"])
async def test_batch_over_100_is_400(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant, shape: str):
    item = trace() if shape == "traces" else {"model": "m", "latency_ms": 1}
    async with http.post(
        f"{harness.gateway_url}/v1/ingest/batch", json={shape: [item] * 101}, headers=tenant.headers
    ) as resp:
        body = await expect_error(resp, 400, "batch_too_large")
    assert body["error"] == "Max 100 events per batch"


async def test_oversized_body_is_413(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant):
    limit = harness.gateway_settings.max_body_bytes
    huge = io.BytesIO(orjson.dumps(trace(input="x" * (limit + 1))))
    headers = {**tenant.headers, "Content-Type": "application/json"}
    async with http.post(f"{harness.gateway_url}/v1/ingest", data=huge, headers=headers) as resp:
        await expect_error(resp, 413, "payload_too_large")

    async def chunks() -> Any:  # no Content-Length: the limit holds while streaming too
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536

    async with http.post(f"{harness.gateway_url}/v1/ingest", data=chunks(), headers=headers) as resp:
        await expect_error(resp, 413, "payload_too_large")


async def test_wrong_content_type_is_415(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant):
    headers = {**tenant.headers, "Content-Type": "text/plain"}
    async with http.post(f"{harness.gateway_url}/v1/ingest", data=b"{}", headers=headers) as resp:
        await expect_error(resp, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer tl_not-a-real-key-at-all-000000000000000"},
        {"X-Api-Key": "tl_not-a-real-key-at-all-000000000000000"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"X-Api-Key": "gl_some_other_vendor_key"},
    ],
    ids=["none", "bearer-unknown", "x-api-key-unknown", "basic", "foreign-prefix"],
)
async def test_missing_or_bad_key_is_401(http: aiohttp.ClientSession, harness: Harness, headers: dict[str, str]):
    for method, path in (
        ("POST", "/v1/ingest"),
        ("GET", "/v1/traces"),
        ("GET", "/v1/metrics"),
        ("GET", "/v1/traces/x"),
    ):
        async with http.request(method, harness.gateway_url + path, json=trace(), headers=headers) as resp:
            await expect_error(resp, 401, "unauthorized")


async def test_revoked_key_is_refused_by_the_running_gateway(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant
):
    async with http.get(f"{harness.gateway_url}/v1/traces", headers=tenant.headers) as resp:
        assert resp.status == 200
    await revoke_api_key(harness.writer, tenant.created.api_key)

    async def refused() -> bool:
        async with http.post(f"{harness.gateway_url}/v1/ingest", json=trace(), headers=tenant.headers) as resp:
            return resp.status == 401

    await eventually(refused, timeout=10)
    async with http.get(f"{harness.gateway_url}/v1/traces", headers=tenant.headers) as resp:
        await expect_error(resp, 401, "unauthorized", "revoked")
    key = harness.gateway_app[config_state].key_by_hash(hash_api_key(tenant.key))
    assert key is not None and key.revoked_at is not None


async def test_other_tenants_project_is_403(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant):
    other = await harness.new_tenant()
    async with http.post(
        f"{harness.gateway_url}/v1/ingest", json=trace(project_id=other.project_id), headers=tenant.headers
    ) as resp:
        await expect_error(resp, 403, "forbidden")
    async with http.get(
        f"{harness.gateway_url}/v1/traces", params={"project_id": other.project_id}, headers=tenant.headers
    ) as resp:
        await expect_error(resp, 403, "forbidden")
    async with http.get(
        f"{harness.gateway_url}/v1/traces", params={"project_id": str(uuid.uuid4())}, headers=tenant.headers
    ) as resp:
        await expect_error(resp, 404, "not_found")


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("limit", "0"),
        ("limit", "201"),
        ("limit", "ten"),
        ("error", "maybe"),
        ("failure_type", "meltdown"),
        ("from", "yesterday"),
        ("latency_min", "-1"),
        ("latency_max", "nan"),
        ("token_count_min", "1.5"),
        ("cursor", "not-a-cursor"),
        ("tag_value", "prod"),
    ],
)
async def test_bad_filter_values_are_400_naming_the_parameter(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant, param: str, value: str
):
    async with http.get(f"{harness.gateway_url}/v1/traces", params={param: value}, headers=tenant.headers) as resp:
        body = await expect_error(resp, 400, "invalid_parameter", param)
    assert body["parameter"] == param


async def test_unknown_route_and_wrong_method_use_the_error_body(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant
):
    async with http.get(f"{harness.gateway_url}/v1/nope", headers=tenant.headers) as resp:
        await expect_error(resp, 404, "not_found")
    async with http.get(f"{harness.gateway_url}/v1/ingest", headers=tenant.headers) as resp:
        await expect_error(resp, 405, "method_not_allowed")


async def test_trace_of_unknown_id_is_404(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant):
    async with http.get(f"{harness.gateway_url}/v1/traces/does-not-exist", headers=tenant.headers) as resp:
        await expect_error(resp, 404, "not_found")


async def test_request_id_is_echoed(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant):
    headers = {**tenant.headers, "X-Request-Id": "my-req-123"}
    async with http.get(f"{harness.gateway_url}/v1/traces/nope", headers=headers) as resp:
        assert resp.headers["X-Request-Id"] == "my-req-123"
        assert (await resp.json())["request_id"] == "my-req-123"


async def test_rejected_batch_stores_none_of_its_traces(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant):
    """A batch is all or nothing: one bad item refuses the whole request before produce."""
    valid = trace()
    async with http.post(
        f"{harness.gateway_url}/v1/ingest/batch",
        json={"traces": [valid, trace(latency_ms=-5)]},
        headers=tenant.headers,
    ) as resp:
        await expect_error(resp, 400, "validation_error", "traces.1.latency_ms")
    sentinel = trace()
    async with http.post(f"{harness.gateway_url}/v1/ingest", json=sentinel, headers=tenant.headers) as resp:
        assert resp.status == 201

    async def sentinel_stored() -> list[str]:
        return [r["id"] for r in await harness.stored_traces(tenant.id)]

    assert await eventually(sentinel_stored) == [sentinel["id"]]
    # The refused batch's valid trace may still be sent again: it was never taken.
    async with http.post(f"{harness.gateway_url}/v1/ingest", json=valid, headers=tenant.headers) as resp:
        assert resp.status == 201
