"""Fan-out amplification (issue 15, finding 3): spans and events are bounded per trace and per
request, count toward the monthly quota, and a record the broker would refuse is a final 413,
never a 503 that SDKs retry forever."""

from __future__ import annotations

import io
from typing import Any

import aiohttp
import orjson

from tests.integration.conftest import Harness, Tenant, eventually, trace
from tests.integration.test_bad_input import expect_error
from tests.integration.test_limits import _with_limits
from trulayer_common.schemas.bounds import MAX_EVENTS_PER_TRACE, MAX_ITEMS_PER_REQUEST, MAX_SPANS_PER_TRACE


def spans(n: int) -> list[dict[str, Any]]:
    return [{"name": f"s{i}"} for i in range(n)]


def events(n: int) -> list[dict[str, Any]]:
    return [{"message": f"e{i}"} for i in range(n)]


async def test_spans_and_events_per_trace_are_bounded(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant
) -> None:
    url = f"{harness.gateway_url}/v1/ingest"
    async with http.post(url, json=trace(spans=spans(MAX_SPANS_PER_TRACE + 1)), headers=tenant.headers) as resp:
        await expect_error(resp, 400, "validation_error", "spans")
    async with http.post(url, json=trace(events=events(MAX_EVENTS_PER_TRACE + 1)), headers=tenant.headers) as resp:
        await expect_error(resp, 400, "validation_error", "events")
    at_bound = trace(spans=spans(MAX_SPANS_PER_TRACE), events=events(MAX_EVENTS_PER_TRACE))
    async with http.post(url, json=at_bound, headers=tenant.headers) as resp:
        assert resp.status == 201, await resp.text()

    async def stored() -> Any:
        async with http.get(f"{url.replace('/v1/ingest', '/v1/traces')}/{at_bound['id']}", headers=tenant.headers) as r:
            body = await r.json() if r.status == 200 else {}
            return body if len(body.get("spans", [])) == MAX_SPANS_PER_TRACE else None

    got = await eventually(stored, timeout=30)
    assert len(got["events"]) == MAX_EVENTS_PER_TRACE


async def test_spans_and_events_per_request_are_bounded_with_413(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant
) -> None:
    per_trace = MAX_ITEMS_PER_REQUEST // 100
    over = [trace(spans=spans(per_trace // 2), events=events(per_trace // 2 + 1)) for _ in range(100)]
    async with http.post(
        f"{harness.gateway_url}/v1/ingest/batch", json={"traces": over}, headers=tenant.headers
    ) as resp:
        body = await expect_error(resp, 413, "too_many_items", str(MAX_ITEMS_PER_REQUEST))
    assert body["limit"] == MAX_ITEMS_PER_REQUEST and body["items"] == MAX_ITEMS_PER_REQUEST + 100
    exactly = [trace(spans=spans(per_trace // 2), events=events(per_trace // 2)) for _ in range(100)]
    async with http.post(
        f"{harness.gateway_url}/v1/ingest/batch", json={"traces": exactly}, headers=tenant.headers
    ) as resp:
        assert resp.status == 201, await resp.text()


async def test_spans_and_events_count_toward_the_monthly_quota(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant
) -> None:
    """A trace counts ceil((1 + spans + events) / 100) units: 450 spans make 5."""
    await _with_limits(harness, tenant, monthly_traces=5)
    async with http.post(
        f"{harness.gateway_url}/v1/ingest", json=trace(spans=spans(450)), headers=tenant.headers
    ) as resp:
        assert resp.status == 201, await resp.text()
    async with http.post(f"{harness.gateway_url}/v1/ingest", json=trace(), headers=tenant.headers) as resp:
        body = await expect_error(resp, 429, "monthly_quota_exceeded")
    assert (body["limit"], body["used"], body["requested"]) == (5, 5, 1)


async def test_a_record_over_the_brokers_limit_is_413_not_503(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant
) -> None:
    """Checked before producing; and when the broker is the one that refuses it (its
    message.max.bytes is 16 MiB here, this gateway's own limit higher), still a 413."""
    await _with_limits(harness, tenant, monthly_traces=1000)
    small = harness.gateway_settings.model_copy(update={"kafka_max_message_bytes": 64 * 1024})
    big = harness.gateway_settings.model_copy(
        update={"kafka_max_message_bytes": 64 * 1024 * 1024, "max_body_bytes": 40 * 1024 * 1024}
    )
    for settings, size in ((small, 100_000), (big, 20 * 1024 * 1024)):
        _app, runner, url = await harness.start_gateway(settings)
        try:
            body = io.BytesIO(orjson.dumps(trace(input="x" * size)))
            headers = {**tenant.headers, "Content-Type": "application/json"}
            async with http.post(f"{url}/v1/ingest", data=body, headers=headers) as resp:
                assert "Retry-After" not in resp.headers
                await expect_error(resp, 413, "payload_too_large", "too large")
        finally:
            await runner.cleanup()
    # Neither refusal took anything from the quota.
    async with http.post(
        f"{harness.gateway_url}/v1/ingest", json=trace(spans=spans(99_9)), headers=tenant.headers
    ) as resp:
        assert resp.status == 201
    async with http.post(
        f"{harness.gateway_url}/v1/ingest/batch", json={"traces": [trace()]}, headers=tenant.headers
    ) as resp:
        assert resp.status == 201 and resp.headers.get("X-RateLimit-Limit") is not None
