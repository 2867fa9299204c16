"""Acceptance of the alerter on the real Kafka, Redis and chDB, with a real local webhook receiver.

Rules and webhooks are created through the gateway (forwarded to the control-engine); traces
go through the gateway's ingest. Traces carry their own ``started_at`` (event time), so
windows and cooldowns are driven by the test's timestamps, not by waiting. A "probe" rule
(volume ≥ 1, the shortest cooldown: one minute of event time) fires on every batch sent at
least a minute of event time after the previous one: seeing its delivery for a batch proves the
alerter has processed that batch, which is what makes "nothing else fired" observable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.integration.alerting_support import Receiver, ago, receiver
from tests.integration.conftest import Harness, Tenant, eventually, trace

SECRET = "whsec-0123456789abcdef"


@pytest.fixture
async def alerter(harness: Harness) -> Harness:
    await harness.start_alerter()
    return harness


@pytest.fixture
async def hook() -> AsyncIterator[Receiver]:
    async with receiver(SECRET) as r:
        yield r


class Api:
    def __init__(self, harness: Harness, http: aiohttp.ClientSession, tenant: Tenant) -> None:
        self.harness, self.http, self.tenant = harness, http, tenant

    async def call(self, method: str, path: str, body: Any = None, expect: int | None = None) -> Any:
        async with self.http.request(
            method, self.harness.gateway_url + path, json=body, headers=self.tenant.headers
        ) as resp:
            data = await resp.json()
            if expect is not None:
                assert resp.status == expect, (resp.status, data)
            return data

    async def rule(self, **fields: Any) -> dict[str, Any]:
        body = {"window_secs": 60, "cooldown_minutes": 5, **fields}
        result: dict[str, Any] = await self.call("POST", "/v1/alerts", body, expect=201)
        return result

    async def clear_default_rules(self) -> None:
        listed = await self.call("GET", "/v1/alerts", expect=200)
        for rule in listed["rules"]:
            await self.call("DELETE", f"/v1/alerts/{rule['id']}", expect=200)

    async def webhook(self, url: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("POST", "/v1/webhooks", {"url": url, "secret": SECRET}, expect=201)
        return result

    async def ingest(self, traces: list[dict[str, Any]]) -> None:
        await self.call("POST", "/v1/ingest/batch", {"traces": traces}, expect=201)


@pytest.fixture
async def api(alerter: Harness, http: aiohttp.ClientSession, tenant: Tenant) -> Api:
    api = Api(alerter, http, tenant)
    await api.clear_default_rules()
    return api


def fired(r: Receiver, rule: dict[str, Any]) -> list[dict[str, Any]]:
    return [d.body["data"] for d in r.deliveries if d.body["data"]["rule_id"] == rule["id"]]


async def processed(r: Receiver, probe: dict[str, Any], count: int) -> None:
    """Wait until the probe rule has fired ``count`` times: the alerter has read that many batches."""

    async def seen() -> bool:
        return len(fired(r, probe)) >= count

    await eventually(seen, timeout=30)


async def test_error_rate_rule_fires_once_per_cooldown_with_signed_delivery(
    api: Api, hook: Receiver, alerter: Harness
) -> None:
    await api.webhook(hook.url)
    rule = await api.rule(
        name="errors", metric="error_rate", operator="gt", threshold=50, window_secs=120, cooldown_minutes=5
    )
    probe = await api.rule(name="probe", metric="volume", operator="gte", threshold=1, cooldown_minutes=1)

    await api.ingest([trace(started_at=ago(1000), error="boom" if i == 0 else None) for i in range(4)])
    await processed(hook, probe, 1)
    assert fired(hook, rule) == []  # 25 % errors: below the threshold

    await api.ingest([trace(started_at=ago(940), error="upstream 500") for _ in range(4)])
    await processed(hook, probe, 2)

    async def one() -> list[dict[str, Any]]:
        return fired(hook, rule)

    first = (await eventually(one))[0]
    assert first["metric"] == "error_rate" and first["operator"] == "gt" and first["threshold_value"] == 50
    assert first["metric_value"] == pytest.approx(62.5)
    deliveries = [d for d in hook.deliveries if d.body["data"]["rule_id"] == rule["id"]]
    assert all(d.signature_ok for d in hook.deliveries)
    assert deliveries[0].headers["X-Trulayer-Event"] == "failure.detected"

    # More bad traffic 100 s later: inside the 5-minute cooldown, nothing new is sent.
    await api.ingest([trace(started_at=ago(840), error="boom") for _ in range(4)])
    await processed(hook, probe, 3)
    # And 6 minutes after the first firing: out of cooldown, a second delivery.
    await api.ingest([trace(started_at=ago(580), error="boom") for _ in range(4)])
    await processed(hook, probe, 4)

    async def two() -> list[dict[str, Any]]:
        return fired(hook, rule) if len(fired(hook, rule)) >= 2 else []

    events = await eventually(two)
    assert len(events) == 2
    assert events[1]["triggered_at"] > first["triggered_at"]

    # Stored by the ingest-worker, notification_sent once the receiver answered 2xx.
    async def stored() -> list[dict[str, Any]]:
        listed = await api.call("GET", "/v1/alerts", expect=200)
        mine = [e for e in listed["recent_events"] if e["rule_id"] == rule["id"]]
        return mine if len(mine) == 2 and all(e["notification_sent"] for e in mine) else []

    stored_events = await eventually(stored)
    assert {e["id"] for e in stored_events} == {e["id"] for e in events}


async def test_latency_rules_scope_operators_disable_and_edit(api: Api, hook: Receiver) -> None:
    await api.webhook(hook.url)
    probe = await api.rule(name="probe", metric="volume", operator="gte", threshold=1, cooldown_minutes=1)
    slow = await api.rule(metric="latency_p95", operator="gte", threshold=1000, model="gpt-slow")
    fast = await api.rule(metric="latency_p95", operator="lt", threshold=100, model="gpt-fast", enabled=False)
    edited = await api.rule(metric="latency_p95", operator="gt", threshold=10_000, model="gpt-x")
    batches = 0

    async def send(model: str, latency: float, at: float) -> None:
        nonlocal batches
        await api.ingest([trace(model=model, latency_ms=latency, started_at=ago(at)) for _ in range(5)])
        batches += 1
        await processed(hook, probe, batches)

    # Another model's slow traces do not reach the model-scoped rule.
    await send("gpt-other", 3000, 900)
    assert fired(hook, slow) == []
    await send("gpt-slow", 1000, 839)  # gte: exactly the threshold fires

    async def slow_fired() -> list[dict[str, Any]]:
        return fired(hook, slow)

    assert (await eventually(slow_fired))[0]["metric_value"] == pytest.approx(1000, rel=0.02)

    # Disabled: silence. Enabled again (no restart): the lt rule fires.
    await send("gpt-fast", 20, 778)
    assert fired(hook, fast) == []
    await api.call("PATCH", f"/v1/alerts/{fast['id']}", {"enabled": True}, expect=200)
    await send("gpt-fast", 20, 717)

    async def fast_fired() -> list[dict[str, Any]]:
        return fired(hook, fast)

    assert (await eventually(fast_fired))[0]["operator"] == "lt"

    # Edited threshold applies to the next data, without a restart (GuardLayer's PUT shape).
    await send("gpt-x", 3000, 656)
    assert fired(hook, edited) == []
    await api.call("PUT", f"/v1/alerts/{edited['id']}", {"threshold_value": 2000}, expect=200)
    await send("gpt-x", 3000, 595)

    async def edited_fired() -> list[dict[str, Any]]:
        return fired(hook, edited)

    assert (await eventually(edited_fired))[0]["threshold_value"] == 2000


async def _deliveries(harness: Harness, event_id: str) -> list[dict[str, Any]]:
    return await harness.clickhouse.query(
        "SELECT attempt, status_code, outcome FROM "
        f"{harness.clickhouse.database}.webhook_deliveries FINAL WHERE alert_event_id = {{e:String}} ORDER BY attempt",
        {"e": event_id},
    )


async def _event(harness: Harness, event_id: str) -> list[dict[str, Any]]:
    return await harness.clickhouse.query(
        f"SELECT notification_sent FROM {harness.clickhouse.database}.alert_events FINAL WHERE id = {{e:String}}",
        {"e": event_id},
    )


@pytest.mark.parametrize(
    ("script", "statuses", "outcomes", "sent"),
    [
        ([500, 500, 200], [500, 500, 200], ["retrying", "retrying", "delivered"], True),
        ([410], [410], ["failed"], False),
    ],
)
async def test_retries_on_5xx_not_on_4xx(
    api: Api, alerter: Harness, script: list[int], statuses: list[int], outcomes: list[str], sent: bool
) -> None:
    async with receiver(SECRET, script) as r:
        await api.webhook(r.url)
        rule = await api.rule(metric="volume", operator="gte", threshold=3, cooldown_minutes=60)
        await api.ingest([trace(started_at=ago(300)) for _ in range(3)])

        async def attempts() -> tuple[str, list[dict[str, Any]]] | None:
            stored = await alerter.clickhouse.query(
                f"SELECT id FROM {alerter.clickhouse.database}.alert_events FINAL WHERE rule_id = {{r:String}}",
                {"r": rule["id"]},
            )
            if len(stored) != 1:
                return None
            rows = await _deliveries(alerter, stored[0]["id"])
            return (stored[0]["id"], rows) if len(rows) == len(statuses) else None

        event_id, rows = await eventually(attempts, timeout=30)
        assert [r["status_code"] for r in rows] == statuses
        assert [r["outcome"] for r in rows] == outcomes
        assert r.attempts == len(statuses)
        assert len(r.deliveries) == (1 if sent else 0)

        async def flag() -> list[dict[str, Any]]:
            found = await _event(alerter, event_id)
            return found if found and bool(found[0]["notification_sent"]) == sent else []

        await eventually(flag)
