"""Live signals end to end: traces → alerter windows → ``trulayer.signals`` → the gateway's
decisions. A route's condition on the live error rate flips when the window crosses its
threshold; a dry-run policy logs what it would do and allows; an escalating policy fires
``policy.escalated`` through the alerter's signed webhook delivery, once per cooldown."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aiohttp

from gateway.control_sdk import live_signals_key
from tests.integration.alerting_support import receiver
from tests.integration.conftest import Harness, Tenant, eventually, trace
from tests.integration.control_support import Control

SECRET = "escalation-secret-0123456789"


async def _ingest(control: Control, model: str, n: int, error: str | None = None) -> None:
    traces = [trace(model=model, error=error, latency_ms=100 + i) for i in range(n)]
    async with control.http.post(
        control.url + "/v1/ingest/batch", json={"traces": traces}, headers=control.tenant.headers
    ) as resp:
        assert resp.status == 201, await resp.text()


async def _window_count(harness: Harness, tenant: Tenant, model: str, secs: int, at_least: int) -> None:
    live = harness.gateway_app[live_signals_key]

    async def seen() -> Any:
        stats = live.of(tenant.id).window(tenant.project_id, model, secs, time.time())
        return stats if stats is not None and stats.count >= at_least else None

    await eventually(seen, timeout=30)


async def test_error_rate_condition_flips_the_route_and_dry_run_only_logs(
    harness: Harness, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    await harness.start_alerter()
    control = Control(harness, http, tenant)
    model = f"m-{uuid.uuid4().hex[:8]}"
    condition = {"type": "error_rate", "threshold": 0.5, "window_minutes": 1}
    _, route = await control.call(
        "POST",
        "/v1/model-routes",
        {
            "name": "flaky",
            "condition": condition,
            "action": {"type": "fallback_model", "model": "backup"},
            "models": [model],
        },
        expect=201,
    )
    await _ingest(control, model, 10)
    await _window_count(harness, tenant, model, 60, 10)
    calm = await control.decide(model)
    assert (calm["decision"], calm["rule_id"]) == ("allow", None)
    started = time.monotonic()
    await _ingest(control, model, 30, error="upstream 503")

    async def flipped() -> Any:
        answer = await control.decide(model)
        return answer if answer["decision"] == "route" else None

    answer = await eventually(flipped, timeout=30)
    print(f"error-rate route flipped {(time.monotonic() - started) * 1000:.0f} ms after the errors were ingested")
    assert (answer["target_model"], answer["rule_id"], answer["reason"]) == ("backup", route["id"], "route_fallback")
    # Another model's window is its own: not routed.
    assert (await control.decide("some-other-model"))["decision"] == "allow"

    # dry_run: with the route off, a dry-run block policy says what it would do, and allows.
    await control.call("PATCH", f"/v1/model-routes/{route['id']}", {"enabled": False}, expect=200)
    _, policy = await control.call(
        "POST",
        "/v1/policies",
        {
            "name": "stop the bleeding",
            "trigger_type": "failure_rate",
            "action_type": "block",
            "rule": {"threshold": 0.5, "window_minutes": 1, "models": [model]},
            "dry_run": True,
        },
        expect=201,
    )

    async def shadowed() -> Any:
        answer = await control.decide(model)
        return answer if answer["rule_id"] == policy["id"] else None

    dry = await eventually(shadowed)
    assert (dry["decision"], dry["target_model"], dry["dry_run"]) == ("allow", model, True)
    assert (dry["would_decision"], dry["reason"]) == ("block", "dry_run:policy_block")
    await control.call("PATCH", f"/v1/policies/{policy['id']}", {"dry_run": False}, expect=200)

    async def enforced() -> Any:
        answer = await control.decide(model)
        return answer if answer["decision"] == "block" else None

    assert (await eventually(enforced))["reason"] == "policy_block"


async def test_escalation_fires_policy_escalated_once_per_cooldown(
    harness: Harness, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    await harness.start_alerter()
    control = Control(harness, http, tenant)
    model = f"m-{uuid.uuid4().hex[:8]}"
    async with receiver(SECRET) as hook:
        await control.call(
            "POST",
            "/v1/webhooks",
            {"url": hook.url, "secret": SECRET, "events": ["policy.escalated"]},
            headers=tenant.headers,
            expect=201,
        )
        _, policy = await control.call(
            "POST",
            "/v1/policies",
            {
                "name": "page someone",
                "trigger_type": "failure_rate",
                "action_type": "escalate",
                "rule": {"threshold": 0.2, "window_minutes": 1, "models": [model]},
                "dry_run": False,
            },
            expect=201,
        )
        await _ingest(control, model, 10, error="timeout")
        await _window_count(harness, tenant, model, 60, 10)

        async def escalating() -> Any:
            answer = await control.decide(model)
            return answer if answer["reason"] == "escalate" else None

        answer = await eventually(escalating, timeout=30)
        assert (answer["decision"], answer["rule_id"], answer["target_model"]) == ("allow", policy["id"], model)
        for _ in range(3):
            await control.decide(model)

        async def delivered() -> Any:
            return [d for d in hook.deliveries if d.body["event"] == "policy.escalated"]

        found = await eventually(delivered, timeout=30)
        await asyncio.sleep(1.5)  # more decisions were logged: the cooldown keeps it to one
        found = await delivered()
        assert len(found) == 1 and found[0].signature_ok
        data = found[0].body["data"]
        assert (data["policy_id"], data["project_id"], data["requested_model"]) == (
            policy["id"],
            tenant.project_id,
            model,
        )
        assert data["policy_name"] == "page someone"
        assert found[0].headers["X-Trulayer-Event"] == "policy.escalated"
