"""The SDK's policy client against the real gateway (issue 14, "control fails closed"): a
kill switch pushed to a connected client; the gateway stopped → the cached bundle while its
TTL lasts, then the tenant's safe default; no bundle ever → the client's safe default; 304s
keep a polling client's bundle fresh; decisions reported in batches and stored; the OpenAI
instrumentation enforcing the real client.

The client is synchronous (threads); it is created and closed off the event loop, which
serves the gateway in this same process."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from tests.integration.conftest import Harness, Tenant, eventually, free_port
from tests.integration.control_support import Control
from tests.integration.test_sdk_openai import FakeOpenAI, fake_openai, sync_openai, tl  # noqa: F401 - fixtures
from trulayer_sdk import TruLayerClient
from trulayer_sdk.policy import PolicyBlockedError, PolicyClient


async def _client(url: str, key: str, **options: Any) -> PolicyClient:
    return await asyncio.to_thread(PolicyClient, key, url, **options)


async def _until(check: Any, timeout: float = 15.0) -> Any:
    async def probe() -> Any:
        return check()

    return await eventually(probe, timeout=timeout, interval=0.01)


async def test_pushes_then_cached_bundle_then_safe_default(
    harness: Harness, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    control = Control(harness, http, tenant)
    settings = harness.gateway_settings.model_copy(update={"control_stream_heartbeat_seconds": 0.3})
    _, runner, url = await harness.start_gateway(settings)
    stopped = False
    client = await _client(url, tenant.key, ttl_seconds=2.0, report_decisions=False)
    try:
        assert client.bundle is not None and client.fresh
        assert client.decide("gpt-4o").decision == "allow"
        await control.call("PUT", "/v1/control/safe-default", {"enforcement": "allow"}, expect=200)
        await _until(lambda: client.bundle is not None and client.bundle.safe_default.enforcement == "allow")

        for active in (True, False):
            started = time.monotonic()
            await control.killswitch(active)
            decision = await _until(lambda a=active: (d := client.decide("gpt-4o")).blocked is a and d)
            took = (time.monotonic() - started) * 1000
            print(f"kill switch {'on' if active else 'off'} pushed to the SDK in {took:.0f} ms")
            if active:
                assert decision.reason == "kill_switch"
                try:
                    client.check("gpt-4o")
                    raise AssertionError("check() should raise")
                except PolicyBlockedError as exc:
                    assert exc.decision.reason == "kill_switch"

        await control.call(
            "POST",
            "/v1/model-routes",
            {"name": "r", "condition": {"type": "always"}, "action": {"type": "fallback_model", "model": "backup"}},
            expect=201,
        )
        await _until(lambda: client.decide("gpt-4o").target_model == "backup")
        await asyncio.sleep(2.5)  # longer than the TTL: the stream's heartbeats keep the bundle fresh
        assert client.fresh and client.control_unreachable == 0

        await runner.cleanup()
        stopped = True
        went_down = time.monotonic()
        cached = client.decide("gpt-4o")
        assert (cached.decision, cached.target_model) == ("route", "backup")  # last known good, within its TTL
        await _until(lambda: client.control_unreachable > 0)
        fallback = await _until(lambda: (d := client.decide("gpt-4o")).reason == "control_unreachable" and d)
        print(
            f"safe default applied {(time.monotonic() - went_down) * 1000:.0f} ms after the gateway stopped (TTL 2 s)"
        )
        # The tenant's safe default (allow), primary model only: never routed to the fallback.
        assert (fallback.decision, fallback.target_model, fallback.config_type) == ("allow", "gpt-4o", "safe_default")
        assert not client.fresh
    finally:
        await asyncio.to_thread(client.close)
        if not stopped:
            await runner.cleanup()


async def test_never_reached_applies_the_clients_safe_default(tenant: Tenant) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    deny = await _client(nowhere, tenant.key, ttl_seconds=1.0, report_decisions=False, connect_timeout_seconds=0.5)
    allow = await _client(
        nowhere, tenant.key, safe_default="allow", report_decisions=False, connect_timeout_seconds=0.5, stream=False
    )
    try:
        blocked = deny.decide("gpt-4o")
        assert (blocked.decision, blocked.reason) == ("block", "control_unreachable")
        assert deny.control_unreachable >= 1 and deny.bundle is None
        allowed = allow.decide("gpt-4o", project_id="p")
        assert (allowed.decision, allowed.target_model) == ("allow", "gpt-4o")
    finally:
        await asyncio.to_thread(deny.close)
        await asyncio.to_thread(allow.close)


async def test_polling_client_stays_fresh_on_304s(harness: Harness, tenant: Tenant) -> None:
    client = await _client(harness.gateway_url, tenant.key, ttl_seconds=1.5, stream=False, report_decisions=False)
    try:
        first = client.bundle
        assert first is not None
        await asyncio.sleep(3.0)  # twice the TTL: polls (answered 304) keep it fresh
        assert client.fresh and client.bundle is first and client.control_unreachable == 0
        assert client.decide("gpt-4o").reason == "no_rule"
    finally:
        await asyncio.to_thread(client.close)


async def test_decisions_are_reported_in_batches_and_stored(harness: Harness, tenant: Tenant) -> None:
    client = await _client(harness.gateway_url, tenant.key, report_interval_seconds=0.2)
    try:
        for i in range(5):
            metadata = {"i": i, "obj": object(), "huge": 2**80, "nan": float("nan"), "long": "x" * 5000}
            client.decide("reported-model", metadata=metadata, request_key=f"k{i}")
    finally:
        await asyncio.to_thread(client.close)
    assert client.reports_sent == 5 and client.reports_dropped == 0
    ch = harness.clickhouse

    async def stored() -> Any:
        rows = await ch.query(
            f"SELECT request_id, decision, source, project_id FROM {ch.database}.control_decisions FINAL "
            "WHERE tenant_id = {t:String} AND requested_model = 'reported-model' ORDER BY request_id",
            {"t": tenant.id},
        )
        return rows if len(rows) == 5 else None

    rows = await eventually(stored, timeout=30)
    assert [r["request_id"] for r in rows] == [f"k{i}" for i in range(5)]
    assert {(r["decision"], r["source"], r["project_id"]) for r in rows} == {("allow", "sdk", tenant.project_id)}


async def test_the_openai_instrumentation_enforces_the_real_policy_client(
    harness: Harness,
    http: aiohttp.ClientSession,
    tenant: Tenant,
    tl: TruLayerClient,  # noqa: F811 - the fixture
    fake_openai: FakeOpenAI,  # noqa: F811 - the fixture
) -> None:
    """``TruLayerClient(policy=PolicyClient(...))``: a model route swaps the model of the call,
    the kill switch makes the call raise before it leaves, both decided locally."""
    control = Control(harness, http, tenant)
    await control.call(
        "POST",
        "/v1/model-routes",
        {"name": "cheaper", "condition": {"type": "always"}, "models": ["gpt-4"],
         "action": {"type": "fallback_model", "model": "gpt-4o-mini"}},
        expect=201,
    )  # fmt: skip
    policy = await _client(harness.gateway_url, tenant.key, report_interval_seconds=0.2)
    tl.policy = policy
    try:
        await _until(lambda: policy.decide("gpt-4").decision == "route")

        def routed() -> None:
            sync_openai(fake_openai).chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "a"}])

        await asyncio.to_thread(routed)
        assert [r["model"] for r in fake_openai.requests] == ["gpt-4o-mini"]
        await control.killswitch(True)
        await _until(lambda: policy.decide("gpt-4").reason == "kill_switch")

        def stopped() -> PolicyBlockedError:
            try:
                sync_openai(fake_openai).chat.completions.create(
                    model="gpt-4", messages=[{"role": "user", "content": "b"}]
                )
            except PolicyBlockedError as exc:
                return exc
            raise AssertionError("the call should have been blocked")

        blocked = await asyncio.to_thread(stopped)
        assert blocked.decision.reason == "kill_switch" and len(fake_openai.requests) == 1
    finally:
        tl.policy = None
        await asyncio.to_thread(policy.close)
