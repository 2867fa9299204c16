"""Rate limits and monthly quotas on the real Redis: exact under concurrency, fail-open without Redis."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from prometheus_client import REGISTRY

from control_engine.config_log import ConfigLogWriter
from control_engine.tenants import create_tenant
from gateway.resources import config_state
from tests.integration.conftest import DATA_DIR, REPO, Harness, Tenant, eventually, free_port, trace
from trulayer_common.config import TenantLimits, hash_api_key
from trulayer_common.kafka import create_producer
from trulayer_local import infra

WINDOW = 60


async def _with_limits(harness: Harness, tenant: Tenant, **limits: Any) -> None:
    """Give the tenant per-tenant overrides and wait until the gateway applies them."""
    updated = tenant.created.tenant.model_copy(update={"limits": TenantLimits(**limits)})
    await harness.writer.append(updated, "tests")
    state = harness.gateway_app[config_state]

    async def applied() -> bool:
        current = state.tenants.get(tenant.id)
        return current is not None and current.limits == updated.limits

    await eventually(applied, timeout=10)


async def _clear_of_window_edge(margin: float = 8.0) -> None:
    """Fixed windows reset on the minute: start a burst well inside one, so it counts in one window."""
    into = time.time() % WINDOW
    if into > WINDOW - margin:
        await asyncio.sleep(WINDOW - into + 0.2)


async def test_headers_on_every_response(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant):
    base = harness.gateway_url
    async with http.post(f"{base}/v1/ingest", json=trace(), headers=tenant.headers) as resp:
        assert resp.status == 201
        assert resp.headers["X-RateLimit-Limit"] == "1000"
        assert int(resp.headers["X-RateLimit-Remaining"]) <= 999
        assert int(resp.headers["X-RateLimit-Reset"]) > time.time() - 1
    async with http.get(f"{base}/v1/traces", headers=tenant.headers) as resp:
        assert resp.status == 200
        assert resp.headers["X-RateLimit-Limit"] == str(600 * 60)  # pro: 600 rps per 1-minute window
    # Error responses of authenticated requests carry them too.
    async with http.get(f"{base}/v1/traces?latency_min=abc", headers=tenant.headers) as resp:
        assert resp.status == 400
        assert "X-RateLimit-Remaining" in resp.headers
    async with http.post(
        f"{base}/v1/ingest", data=b"{", headers={**tenant.headers, "Content-Type": "application/json"}
    ) as resp:
        assert resp.status == 400
        assert "X-RateLimit-Limit" in resp.headers
    async with http.get(f"{base}/v1/projects", headers=harness.session_headers(tenant.id)) as resp:
        assert resp.status == 200
        assert "X-RateLimit-Limit" in resp.headers


async def test_concurrent_ingest_requests_admit_exactly_the_limit(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant
):
    limit, attempts = 7, 40
    await _with_limits(harness, tenant, ingest_requests_per_minute=limit)
    await _clear_of_window_edge()

    async def one() -> tuple[int, dict[str, Any], Any]:
        async with http.post(f"{harness.gateway_url}/v1/ingest", json=trace(), headers=tenant.headers) as resp:
            return resp.status, await resp.json(), resp.headers.copy()

    results = await asyncio.gather(*(one() for _ in range(attempts)))
    statuses = [status for status, _, _ in results]
    assert statuses.count(201) == limit
    assert statuses.count(429) == attempts - limit
    _, body, headers = next(r for r in results if r[0] == 429)
    assert body["code"] == "rate_limited"
    assert body["error"] == "Rate limit exceeded"
    assert 1 <= body["retry_after_seconds"] <= WINDOW
    assert headers["Retry-After"] == str(body["retry_after_seconds"])
    assert headers["X-RateLimit-Remaining"] == "0"
    assert headers["X-RateLimit-Limit"] == str(limit)
    assert body["request_id"] == headers["X-Request-Id"]


async def test_read_window_per_tenant(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant):
    await _with_limits(harness, tenant, read_rps=1)  # 60 per 1-minute window
    other = await harness.new_tenant()
    await _clear_of_window_edge()

    async def read(headers: dict[str, str]) -> int:
        async with http.get(f"{harness.gateway_url}/v1/metrics", headers=headers) as resp:
            await resp.read()
            return resp.status

    statuses = await asyncio.gather(*(read(tenant.headers) for _ in range(70)))
    assert statuses.count(200) == 60
    assert statuses.count(429) == 10
    assert await read(other.headers) == 200  # another tenant's window is its own


async def test_monthly_quota_counts_traces_and_is_exact(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant):
    await _with_limits(harness, tenant, monthly_traces=250)
    base = harness.gateway_url

    async def batch(n: int) -> tuple[int, dict[str, Any], Any]:
        body = {"traces": [trace() for _ in range(n)]}
        async with http.post(f"{base}/v1/ingest/batch", json=body, headers=tenant.headers) as resp:
            return resp.status, await resp.json(), resp.headers.copy()

    assert (await batch(100))[0] == 201
    # 10 concurrent 20-trace batches against the 150 left: exactly 7 fit.
    results = await asyncio.gather(*(batch(20) for _ in range(10)))
    assert [r[0] for r in results].count(201) == 7
    status, body, headers = await batch(20)
    assert status == 429
    assert body["code"] == "monthly_quota_exceeded"
    assert body["error"] == "Monthly quota exceeded"
    assert body["retry_after_seconds"] >= 1
    assert int(headers["Retry-After"]) == body["retry_after_seconds"]
    assert body["limit"] == 250 and body["used"] == 240
    assert (await batch(10))[0] == 201  # exactly fills it
    async with http.post(f"{base}/v1/ingest", json=trace(), headers=tenant.headers) as resp:
        assert resp.status == 429
        assert (await resp.json())["code"] == "monthly_quota_exceeded"
    # A duplicate is answered without touching the quota.
    sent = trace()
    await _with_limits(harness, tenant, monthly_traces=251)
    async with http.post(f"{base}/v1/ingest", json=sent, headers=tenant.headers) as resp:
        assert resp.status == 201
    async with http.post(f"{base}/v1/ingest", json=sent, headers=tenant.headers) as resp:
        assert resp.status == 200


async def test_enterprise_has_no_hard_limits(http: aiohttp.ClientSession, harness: Harness):
    tenant = await harness.new_tenant(plan="enterprise")
    results = []
    for _ in range(3):
        async with http.post(
            f"{harness.gateway_url}/v1/ingest/batch",
            json={"traces": [trace() for _ in range(100)]},
            headers=tenant.headers,
        ) as resp:
            results.append(resp.status)
            assert "X-RateLimit-Limit" not in resp.headers
    assert results == [201, 201, 201]


def _fail_open_count() -> float:
    total = 0.0
    for check in ("ingest", "monthly_quota"):
        total += REGISTRY.get_sample_value("trulayer_gateway_limits_fail_open_total", {"check": check}) or 0.0
    return total


async def test_redis_down_keeps_ingest_open_and_auth_closed(http: aiohttp.ClientSession, harness: Harness):
    """A gateway on its own Redis: stop that Redis, ingest keeps working (limits fail open,
    counted), invalid and revoked keys stay refused (auth never depends on Redis)."""
    cfg = infra.InfraConfig(
        repo_root=REPO,
        data_dir=DATA_DIR / "redis-outage",
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        redis_port=free_port(),
    )
    await asyncio.to_thread(infra.start_redis, cfg)
    try:
        settings = harness.gateway_settings.model_copy(update={"redis_url": cfg.redis_url})
        app, runner, url = await harness.start_gateway(settings)
        producer = create_producer(harness.base, client_id="tests-redis-outage")
        await producer.start()
        try:
            writer = ConfigLogWriter(producer)
            created = await create_tenant(writer, "redis-outage", "starter")
            revoked = await create_tenant(writer, "redis-outage-revoked", "starter")
            await writer.append(revoked.api_key.model_copy(update={"revoked_at": revoked.tenant.created_at}), "tests")

            async def known() -> bool:
                state = app[config_state]
                key = state.key_by_hash(hash_api_key(revoked.secret))
                return (
                    state.key_by_hash(hash_api_key(created.secret)) is not None
                    and key is not None
                    and (key.revoked_at is not None)
                )

            await eventually(known)
            headers = {"X-Api-Key": created.secret}
            async with http.post(f"{url}/v1/ingest", json=trace(), headers=headers) as resp:
                assert resp.status == 201
                assert "X-RateLimit-Limit" in resp.headers
            await asyncio.to_thread(infra.stop_redis, cfg)
            before = _fail_open_count()
            async with http.post(f"{url}/v1/ingest/batch", json={"traces": [trace()]}, headers=headers) as resp:
                assert resp.status == 201
            assert _fail_open_count() >= before + 2  # the request window and the monthly quota
            async with http.post(f"{url}/v1/ingest", json=trace(), headers={"X-Api-Key": "tl_forged"}) as resp:
                assert resp.status == 401
            async with http.post(f"{url}/v1/ingest", json=trace(), headers={"X-Api-Key": revoked.secret}) as resp:
                assert resp.status == 401
        finally:
            await producer.stop()
            await runner.cleanup()
    finally:
        await asyncio.to_thread(infra.stop_redis, cfg)
