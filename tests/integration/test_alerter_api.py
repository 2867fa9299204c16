"""The alerting API through the gateway: validation naming the field, auth, limits, webhooks'
signed test send, default rules, and anomalies detected end to end and listed."""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from tests.integration.alerting_support import Receiver, receiver
from tests.integration.conftest import Harness, Tenant, eventually, trace
from tests.integration.test_alerter import SECRET, Api, processed


@pytest.fixture
async def hook() -> AsyncIterator[Receiver]:
    async with receiver(SECRET) as r:
        yield r


async def raw(http: aiohttp.ClientSession, harness: Harness, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    async with http.request(method, harness.gateway_url + path, **kw) as resp:
        return resp.status, await resp.json()


async def test_new_tenant_has_three_default_rules(
    harness: Harness, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    listed = await Api(harness, http, tenant).call("GET", "/v1/failure-rules", expect=200)
    assert sorted(r["metric"] for r in listed["rules"]) == ["cost_per_call", "error_rate", "latency_p95"]
    assert listed["recent_events"] == []


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"metric": "p42", "operator": "gt", "threshold": 1}, 400, "metric"),
        ({"metric": "error_rate", "operator": "eq", "threshold": 1}, 400, "operator"),
        ({"metric": "error_rate", "operator": "gt", "threshold": "lots"}, 400, "threshold"),
        ({"metric": "error_rate", "operator": "gt"}, 422, "threshold"),
        ({"metric": "eval_score", "operator": "gt", "threshold": 1}, 422, "metric_name"),
        ({"metric": "error_rate", "operator": "gt", "threshold": 1, "window_secs": 999999}, 400, "window_secs"),
        ({"metric": "error_rate", "operator": "gt", "threshold": 1, "project_id": "nope"}, 400, "project_id"),
        ({"metric": "error_rate", "operator": "gt", "threshold": 1, "cooldown_minutes": 0}, 400, "cooldown_minutes"),
        ({"metric": "error_rate", "operator": "gt", "threshold": 1e400}, 400, "threshold"),
    ],
)
async def test_rule_validation_names_the_field(
    harness: Harness, http: aiohttp.ClientSession, tenant: Tenant, body: dict[str, Any], status: int, field: str
) -> None:
    code, data = await raw(http, harness, "POST", "/v1/alerts", json=body, headers=tenant.headers)
    assert code == status, data
    assert f"'{field}" in data["error"] and data["request_id"]


async def test_bad_requests(harness: Harness, http: aiohttp.ClientSession, tenant: Tenant) -> None:
    h = tenant.headers
    assert (await raw(http, harness, "GET", "/v1/alerts"))[0] == 401
    code, data = await raw(
        http, harness, "POST", "/v1/webhooks", json={"url": "http://x.test/h", "secret": "short"}, headers=h
    )
    assert code == 400 and "'secret'" in data["error"]
    code, data = await raw(
        http, harness, "POST", "/v1/webhooks", json={"url": "not a url", "secret": SECRET}, headers=h
    )
    assert code == 400 and "'url'" in data["error"]
    code, data = await raw(
        http, harness, "POST", "/v1/alerts", data=b"{", headers={**h, "Content-Type": "application/json"}
    )
    assert code == 400 and data["code"] == "malformed_json"
    code, data = await raw(
        http,
        harness,
        "POST",
        "/v1/alerts",
        data=io.BytesIO(b"x" * (2 * 1024 * 1024)),
        headers={**h, "Content-Type": "application/json"},
    )
    assert code == 413
    assert (await raw(http, harness, "PATCH", "/v1/alerts/nope", json={"enabled": False}, headers=h))[0] == 404
    mine = await Api(harness, http, tenant).rule(metric="volume", operator="gt", threshold=1)
    for field in ("cooldown_minutes", "window_secs", "severity", "enabled", "name", "threshold"):
        # Found by the OpenAPI fuzzer: a null for a field the rule cannot be without was a 500.
        code, data = await raw(http, harness, "PATCH", f"/v1/alerts/{mine['id']}", json={field: None}, headers=h)
        assert code == 400 and f"'{field}'" in data["error"], (field, data)
    code, data = await raw(http, harness, "PATCH", f"/v1/alerts/{mine['id']}", json={"model": None}, headers=h)
    assert code == 200 and data["model"] is None
    other = await harness.new_tenant()
    theirs = await Api(harness, http, other).rule(metric="volume", operator="gt", threshold=1)
    assert (await raw(http, harness, "DELETE", f"/v1/alerts/{theirs['id']}", headers=h))[0] == 403
    code, data = await raw(http, harness, "GET", "/v1/anomalies?type=weird", headers=h)
    assert code == 400 and "'type'" in data["error"]
    assert (await raw(http, harness, "GET", "/v1/anomalies/nope", headers=h))[0] == 404


async def test_rule_limit(harness: Harness, http: aiohttp.ClientSession, tenant: Tenant) -> None:
    api = Api(harness, http, tenant)
    listed = await api.call("GET", "/v1/alerts", expect=200)
    for _ in range(100 - len(listed["rules"])):
        await api.rule(metric="volume", operator="gt", threshold=1)
    data = await api.call("POST", "/v1/alerts", {"metric": "volume", "operator": "gt", "threshold": 1}, expect=409)
    assert data["code"] == "limit_reached"


async def test_webhook_crud_and_signed_test_send(
    harness: Harness, http: aiohttp.ClientSession, tenant: Tenant, hook: Receiver
) -> None:
    api = Api(harness, http, tenant)
    created = await api.webhook(hook.url)
    assert "secret" not in created and created["events"] == ["failure.detected"]
    result = await api.call("POST", f"/v1/webhooks/{created['id']}/test", expect=200)
    assert result["delivered"] is True and result["outcome"] == "delivered" and result["status_class"] == "2xx"
    assert "status_code" not in result and "error" not in result
    assert hook.deliveries[0].signature_ok and hook.deliveries[0].body["event"] == "webhook.test"
    listed = await api.call("GET", "/v1/webhooks", expect=200)
    assert [w["id"] for w in listed["webhooks"]] == [created["id"]]
    await api.call("DELETE", f"/v1/webhooks/{created['id']}", expect=200)
    assert (await api.call("GET", "/v1/webhooks", expect=200))["webhooks"] == []


async def test_latency_spike_detected_and_listed(
    harness: Harness, http: aiohttp.ClientSession, tenant: Tenant, hook: Receiver
) -> None:
    await harness.start_alerter()
    api = Api(harness, http, tenant)
    await api.clear_default_rules()
    await api.webhook(hook.url)
    # Batches are processed in order only if each is seen before the next is sent (they land on
    # different trace partitions): the probe rule's delivery says a batch was processed.
    # One batch per anomaly bucket (60 s of event time): each is a minute after the previous, so
    # the probe (one-minute cooldown) fires on every one.
    probe = await api.rule(name="probe", metric="volume", operator="gte", threshold=1, cooldown_minutes=1)
    batches = 0

    async def send(traces: list[dict[str, Any]]) -> None:
        nonlocal batches
        await api.ingest(traces)
        batches += 1
        await processed(hook, probe, batches)

    settings = harness.alerter_settings
    size = settings.anomaly_bucket_secs
    base = (int(time.time()) // size - 40) * size  # 40 buckets ago, aligned

    def at(bucket: int) -> str:
        return datetime.fromtimestamp(base + bucket * size + 1, UTC).isoformat()

    warm = settings.anomaly_warmup_buckets + 2
    for b in range(warm):
        await send([trace(latency_ms=100 + (i % 5), started_at=at(b)) for i in range(settings.anomaly_min_traces)])
    await send([trace(latency_ms=3000, started_at=at(warm)) for _ in range(settings.anomaly_min_traces)])
    await send([trace(latency_ms=100, started_at=at(warm + 1)) for _ in range(settings.anomaly_min_traces)])

    async def listed() -> list[dict[str, Any]]:
        data = await api.call("GET", f"/v1/anomalies?project_id={tenant.project_id}&type=latency_spike", expect=200)
        return list(data["anomalies"])

    anomalies = await eventually(listed, timeout=30)
    assert len(anomalies) == 1 and anomalies[0]["observed_value"] == pytest.approx(3000, rel=0.02)
    one = await api.call("GET", f"/v1/anomalies/{anomalies[0]['id']}", expect=200)
    assert one["type"] == "latency_spike" and one["severity"] in ("high", "critical")
