"""The control plane end to end (issue 12): configuration through the gateway and the
control-engine, the SDK surface served from memory, the kill switch reaching a second gateway
replica and a connected stream, ETag/304, routing by priority, decisions stored and counted,
the access matrix and tenant isolation."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from typing import Any

import aiohttp
import pytest

from tests.integration.conftest import Harness, Tenant, eventually
from tests.integration.control_support import Control, config_stream, killswitch_off, killswitch_on
from tests.integration.test_session_wall import _key
from trulayer_common.schemas.control_sdk import DecisionOut, PolicyBundleOut
from trulayer_common.schemas.policies import KillSwitchState, ModelRouteList, PolicyList, PolicyOut
from trulayer_common.schemas.responses import ErrorBody


@pytest.fixture
async def control(harness: Harness, http: aiohttp.ClientSession, tenant: Tenant) -> Control:
    return Control(harness, http, tenant)


def policy_body(**fields: Any) -> dict[str, Any]:
    return {
        "name": "p",
        "trigger_type": "failure_rate",
        "action_type": "block",
        "rule": {"threshold": 0.5},
        **fields,
    }


def route_body(**fields: Any) -> dict[str, Any]:
    return {
        "name": "r",
        "condition": {"type": "always"},
        "action": {"type": "fallback_model", "model": "backup"},
        **fields,
    }


async def test_policies_crud_archive_and_list(control: Control) -> None:
    member = control.session("member")
    _, created = await control.call("POST", "/v1/policies", policy_body(description="d"), member, expect=201)
    PolicyOut.model_validate(created)
    assert created["dry_run"] is True and created["status"] == "active" and created["rollout_pct"] == 100
    assert (created["max_retry_depth"], created["max_cascade_depth"]) == (3, 5)
    pid = created["id"]
    _, got = await control.call("GET", f"/v1/policies/{pid}", headers=control.tenant.headers, expect=200)
    assert got == created
    _, patched = await control.call("PATCH", f"/v1/policies/{pid}", {"dry_run": False, "priority": 7}, member, 200)
    assert (patched["dry_run"], patched["priority"], patched["rule"]["threshold"]) == (False, 7, 0.5)
    _, archived = await control.call("DELETE", f"/v1/policies/{pid}", headers=member, expect=200)
    assert archived["status"] == "archived" and archived["archived_at"]
    _, listed = await control.call("GET", "/v1/policies", headers=control.tenant.headers, expect=200)
    PolicyList.model_validate(listed)
    assert pid not in [p["id"] for p in listed["items"]]
    _, archived_list = await control.call("GET", "/v1/policies?status=archived", expect=200)
    assert [p["id"] for p in archived_list["items"]] == [pid]
    yaml_rule = "threshold: 0.2\nwindow_minutes: 10\nmodels: [gpt-4o]\n"
    _, from_yaml = await control.call("POST", "/v1/policies", policy_body(rule=None, rule_yaml=yaml_rule), member, 201)
    assert from_yaml["rule"]["threshold"] == 0.2 and from_yaml["rule"]["models"] == ["gpt-4o"]
    assert from_yaml["rule_yaml"] == yaml_rule


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (policy_body(trigger_type="vibes"), 400, "trigger_type"),
        (policy_body(action_type="pray"), 400, "action_type"),
        (policy_body(action_type="fallback_model"), 422, "rule.model"),
        (policy_body(action_type="route_pct", rule={"threshold": 0.5, "model": "m"}), 422, "rule.pct"),
        (policy_body(rollout_pct=150), 400, "rollout_pct"),
        (policy_body(max_retry_depth=11), 400, "max_retry_depth"),
        (policy_body(max_cascade_depth=0), 400, "max_cascade_depth"),
        (policy_body(rule={"treshold": 0.5}), 400, "rule.treshold"),
        (policy_body(rule={}), 422, "rule.threshold"),
        (policy_body(rule={"threshold": 5}), 400, "rule.threshold"),
        (policy_body(trigger_type="eval_score", rule={"threshold": 0.5}), 422, "rule.metric_name"),
        (policy_body(rule=None, rule_yaml="threshold: [0.5"), 400, "rule_yaml"),
        (policy_body(rule=None, rule_yaml="- 1\n- 2\n"), 400, "rule_yaml"),
        (policy_body(rule=None, rule_yaml="a: &x [1]\nb: *x\n"), 400, "rule_yaml"),
        (policy_body(rule=None, rule_yaml="window_minutes: 5\n"), 422, "rule_yaml.threshold"),
        (policy_body(rule=None, rule_yaml="threshold: 0.5\nbogus: 1\n"), 400, "rule_yaml.bogus"),
        (policy_body(rule_yaml="threshold: 0.5\n"), 400, "rule_yaml"),
        (policy_body(rule={"threshold": 0.5, "project_id": "nope"}), 400, "rule.project_id"),
        ({"trigger_type": "failure_rate", "action_type": "block"}, 422, "name"),
    ],
)
async def test_invalid_policies_name_the_field(control: Control, body: dict[str, Any], status: int, field: str) -> None:
    got, data = await control.call("POST", "/v1/policies", body, control.session("member"))
    assert got == status, data
    ErrorBody.model_validate(data)
    assert f"'{field}'" in data["error"], data


async def test_rule_yaml_size_is_bounded(control: Control) -> None:
    big = "threshold: 0.5\n" + "".join(f"# {'x' * 60}\n" for _ in range(400))
    status, data = await control.call("POST", "/v1/policies", policy_body(rule=None, rule_yaml=big), control.session())
    assert status == 400 and "'rule_yaml'" in data["error"]


async def test_model_routes_paginate_by_priority_and_validate(control: Control) -> None:
    member = control.session("member")
    ids = []
    for priority in (30, 10, 20):
        _, route = await control.call("POST", "/v1/model-routes", route_body(priority=priority), member, expect=201)
        ids.append((priority, route["id"]))
    expected = [rid for _, rid in sorted(ids)]
    _, first = await control.call("GET", "/v1/model-routes?limit=2", headers=control.tenant.headers, expect=200)
    ModelRouteList.model_validate(first)
    assert first["has_more"] is True and [r["id"] for r in first["items"]] == expected[:2]
    _, second = await control.call("GET", f"/v1/model-routes?limit=2&cursor={first['next_cursor']}", expect=200)
    assert second == {**second, "has_more": False, "next_cursor": None}
    assert [r["id"] for r in second["items"]] == expected[2:]
    for query, parameter in (("limit=0", "limit"), ("limit=x", "limit"), ("cursor=%25%25", "cursor")):
        status, data = await control.call("GET", f"/v1/model-routes?{query}")
        assert (status, data["parameter"]) == (400, parameter)
    bad = [
        (route_body(condition={"type": "error_rate", "threshold": 5}), 400, "condition.threshold"),
        (route_body(condition={"type": "latency_threshold"}), 422, "condition.threshold"),
        (route_body(action={"type": "fallback_model"}), 422, "action.model"),
        (route_body(condition={"type": "sometimes"}), 400, "condition.type"),
        (
            route_body(condition={"type": "error_rate", "threshold": 0.1, "window_minutes": 61}),
            400,
            "condition.window_minutes",
        ),
    ]
    for body, status, field in bad:
        got, data = await control.call("POST", "/v1/model-routes", body, member)
        assert got == status and f"'{field}'" in data["error"], (body, data)
    _, patched = await control.call("PATCH", f"/v1/model-routes/{expected[0]}", {"enabled": False}, member, 200)
    assert patched["enabled"] is False
    _, gone = await control.call("DELETE", f"/v1/model-routes/{expected[0]}", headers=member, expect=200)
    assert gone["id"] == expected[0]
    await control.call("GET", f"/v1/model-routes/{expected[0]}", expect=404)


async def test_config_etag_304_and_version(control: Control) -> None:
    url = control.url + "/v1/control/config"
    async with control.http.get(url, headers=control.tenant.headers) as resp:
        assert resp.status == 200 and resp.headers["Cache-Control"] == "max-age=60"
        etag = resp.headers["ETag"]
        first = PolicyBundleOut.model_validate(await resp.json())
    assert first.default_project_id == control.tenant.project_id
    assert first.projects == {"default": control.tenant.project_id}
    assert first.safe_default.enforcement == "deny" and first.killswitch.active is False
    async with control.http.get(url, headers={**control.tenant.headers, "If-None-Match": etag}) as resp:
        assert resp.status == 304 and resp.headers["ETag"] == etag
    await control.call("POST", "/v1/model-routes", route_body(), control.session(), expect=201)

    async def changed() -> Any:
        async with control.http.get(url, headers={**control.tenant.headers, "If-None-Match": etag}) as resp:
            return (resp.headers["ETag"], await resp.json()) if resp.status == 200 else None

    new_etag, second = await eventually(changed)
    assert new_etag != etag and second["version"] > first.version and len(second["model_routes"]) == 1


async def test_decide_routes_by_priority(control: Control) -> None:
    owner = control.session()
    _, slow = await control.call(
        "POST",
        "/v1/model-routes",
        route_body(priority=50, action={"type": "fallback_model", "model": "b50"}),
        owner,
        201,
    )
    _, fast = await control.call(
        "POST",
        "/v1/model-routes",
        route_body(priority=10, action={"type": "fallback_model", "model": "b10"}),
        owner,
        201,
    )
    await control.call(
        "POST", "/v1/model-routes", route_body(priority=1, models=["other-model"], action={"type": "block"}), owner, 201
    )

    async def routed() -> Any:
        answer = await control.decide("gpt-4o")
        return answer if answer["rule_id"] == fast["id"] else None

    answer = await eventually(routed)
    DecisionOut.model_validate(answer)
    assert (answer["decision"], answer["target_model"], answer["reason"]) == ("route", "b10", "route_fallback")
    blocked = await control.decide("other-model")
    assert blocked["decision"] == "block" and blocked["reason"] == "route_block"
    await control.call("PATCH", f"/v1/model-routes/{fast['id']}", {"priority": 90}, owner, 200)

    async def reordered() -> Any:
        answer = await control.decide("gpt-4o")
        return answer if answer["rule_id"] == slow["id"] else None

    assert (await eventually(reordered))["target_model"] == "b50"


async def test_killswitch_reaches_a_second_replica_and_a_connected_stream(harness: Harness, control: Control) -> None:
    other, runner, other_url = await harness.start_gateway(harness.gateway_settings)
    try:
        async with config_stream(control.http, other_url, control.tenant.headers) as stream:
            await stream.wait_for(killswitch_off)
            assert (await control.decide(url=other_url))["decision"] == "allow"
            timings = []
            for _ in range(3):
                for active in (True, False):
                    mark = len(stream.events)
                    started = time.monotonic()
                    state = await control.killswitch(active, reason="incident" if active else None)
                    KillSwitchState.model_validate(state)
                    assert state["active"] is active
                    acked = time.monotonic()
                    frame_at, _ = await stream.wait_for(killswitch_on if active else killswitch_off, since=mark)

                    async def decided(active: bool = active) -> Any:
                        answer = await control.decide(url=other_url)
                        return answer if (answer["decision"] == "block") is active else None

                    answer = await eventually(decided, interval=0.005)
                    decided_at = time.monotonic()
                    if active:
                        assert answer["reason"] == "kill_switch" and answer["target_model"] is None
                    timings.append((active, acked - started, frame_at - started, decided_at - started))
            states = [b["killswitch"]["active"] for b in stream.bundles()]
            # Order: off, then on/off alternating, ending off (pushes coalesce, never reorder).
            assert states[0] is False and states[-1] is False
            assert all(a != b for a, b in itertools.pairwise(states))
        for active, ack, frame, decide in timings:
            print(
                f"killswitch {'on ' if active else 'off'}: owner ack {ack * 1000:.1f} ms, "
                f"SSE frame {frame * 1000:.1f} ms, decide on replica 2 {decide * 1000:.1f} ms"
            )
    finally:
        await runner.cleanup()
    assert other is not None


async def test_execute_enforces(control: Control) -> None:
    async with control.http.post(
        control.url + "/v1/control/execute", json={"model": "m"}, headers=control.tenant.headers
    ) as resp:
        assert resp.status == 200 and (await resp.json())["decision"] == "allow"
    await control.call("POST", "/v1/model-routes", route_body(action={"type": "block"}), control.session(), 201)

    async def blocked() -> Any:
        async with control.http.post(
            control.url + "/v1/control/execute", json={"model": "m"}, headers=control.tenant.headers
        ) as resp:
            return (resp.status, await resp.json()) if resp.status != 200 else None

    status, body = await eventually(blocked)
    assert status == 403 and body["code"] == "error.policy_blocked" and body["rule_id"]
    ErrorBody.model_validate(body)
    await control.killswitch(True)

    async def stopped() -> Any:
        async with control.http.post(
            control.url + "/v1/control/execute", json={"model": "m"}, headers=control.tenant.headers
        ) as resp:
            return (resp.status, await resp.json(), resp.headers.get("Retry-After")) if resp.status == 503 else None

    status, body, retry_after = await eventually(stopped)
    assert body["code"] == "error.kill_switch_active" and retry_after
    ErrorBody.model_validate(body)


async def test_project_killswitch_and_safe_default(control: Control) -> None:
    state = await control.killswitch(True, project_id="default", reason="only this project")
    assert state["active"] is False and state["projects"][0]["project_id"] == control.tenant.project_id

    async def blocked() -> Any:
        return (await control.decide(project_id="default"))["decision"] == "block"

    await eventually(blocked)
    status, data = await control.call("POST", "/v1/control/killswitch/enable", {"project_id": "nope"})
    assert status == 400 and "'project_id'" in data["error"]
    _, current = await control.call("GET", "/v1/control/safe-default", headers=control.tenant.headers, expect=200)
    assert current == {"enforcement": "deny", "routing": "primary_only", "updated_at": None, "updated_by": None}
    _, changed = await control.call("PUT", "/v1/control/safe-default", {"enforcement": "allow"}, expect=200)
    assert changed["enforcement"] == "allow" and changed["updated_by"].startswith("user:")
    status, _ = await control.call("PUT", "/v1/control/safe-default", {"enforcement": "maybe"})
    assert status == 400


async def test_decisions_are_stored_and_counted(harness: Harness, control: Control) -> None:
    await control.call("POST", "/v1/model-routes", route_body(models=["routed"]), control.session(), 201)

    async def routing() -> bool:
        return (await control.decide("routed"))["decision"] == "route"

    await eventually(routing)
    for model in ("routed", "routed", "plain"):
        await control.decide(model, metadata={"team": "search"})
    report_id = uuid.uuid4().hex
    reports = [
        {
            "id": report_id,
            "model": "sdk-model",
            "decision": "block",
            "reason": "kill_switch",
            "config_type": "killswitch",
        },
        {"model": "sdk-model", "decision": "allow", "reason": "no_rule", "status": "fail", "metadata": {"team": "x"}},
    ]
    for _ in range(2):  # the same id twice is stored once
        async with control.http.post(
            control.url + "/v1/control/decisions", json={"decisions": reports[:1]}, headers=control.tenant.headers
        ) as resp:
            assert resp.status == 202 and await resp.json() == {"accepted": 1}
    async with control.http.post(
        control.url + "/v1/control/decisions", json={"decisions": reports[1:]}, headers=control.tenant.headers
    ) as resp:
        assert resp.status == 202
    ch = harness.clickhouse

    async def counted() -> Any:
        rows = await ch.query(
            f"SELECT source, decision, requested_model, any(target_model) AS target_model, "
            f"any(loadbalance_rule_id) AS loadbalance_rule_id, any(config_type) AS config_type, any(status) AS status, "
            f"count() AS n FROM {ch.database}.control_decisions FINAL "
            "WHERE tenant_id = {t:String} AND (source = 'sdk' OR JSONExtractString(metadata, 'team') = 'search') "
            "GROUP BY source, decision, requested_model",
            {"t": control.tenant.id},
        )
        return rows if sum(r["n"] for r in rows) >= 5 else None

    rows = await eventually(counted, timeout=30)
    await asyncio.sleep(1)  # anything more would arrive by now: the counts are exact
    rows = await counted()
    by = {(r["source"], r["requested_model"], r["decision"]): r for r in rows}
    routed = by[("server", "routed", "route")]
    assert (routed["n"], routed["target_model"], routed["config_type"]) == (2, "backup", "model_route")
    assert routed["loadbalance_rule_id"] and routed["status"] == "success"
    assert by[("server", "plain", "allow")]["n"] == 1
    assert by[("sdk", "sdk-model", "block")]["n"] == 1  # the re-sent id is stored once
    assert by[("sdk", "sdk-model", "allow")]["status"] == "fail"


async def test_decision_reports_bad_input(control: Control, harness: Harness) -> None:
    url = control.url + "/v1/control/decisions"
    h = control.tenant.headers
    one = {"model": "m", "decision": "allow"}
    cases: list[tuple[Any, int, str | None]] = [
        ({"decisions": [one] * 101}, 400, "Max 100 events per batch"),
        ({"decisions": []}, 400, None),
        ({"decisions": [{"decision": "allow"}]}, 422, "'decisions.0.model'"),
        ({"decisions": [{**one, "decision": "maybe"}]}, 400, "'decisions.0.decision'"),
        ({"decisions": [{**one, "decided_at": "2001-01-01T00:00:00Z"}]}, 400, "'decisions.0.decided_at'"),
    ]
    for body, status, text in cases:
        async with control.http.post(url, json=body, headers=h) as resp:
            data = await resp.json()
            assert resp.status == status, (body, data)
            assert text is None or text in data["error"], data
    async with control.http.post(url, data=b"{", headers={**h, "Content-Type": "application/json"}) as resp:
        assert resp.status == 400
    async with control.http.post(url, data=b"x", headers={**h, "Content-Type": "text/plain"}) as resp:
        assert resp.status == 415
    read_only = await _key(control.http, harness, control.tenant, ["read"])
    async with control.http.post(
        url, json={"decisions": [one]}, headers={"Authorization": f"Bearer {read_only}"}
    ) as resp:
        assert resp.status == 403 and (await resp.json())["code"] == "insufficient_scope"


async def test_decide_bad_input(control: Control) -> None:
    url = control.url + "/v1/control/decide"
    h = control.tenant.headers
    for body, status in (
        ({}, 422),
        ({"model": 5}, 400),
        ({"model": "m", "retry_depth": -1}, 400),
        ({"model": ""}, 400),
    ):
        async with control.http.post(url, json=body, headers=h) as resp:
            assert resp.status == status, body
            ErrorBody.model_validate(await resp.json())
    async with control.http.post(url, data=b"{" * 10, headers={**h, "Content-Type": "application/json"}) as resp:
        assert resp.status == 400
    async with control.http.post(
        url, data=b"x" * (70 * 1024), headers={**h, "Content-Type": "application/json"}
    ) as resp:
        assert resp.status == 413
    async with control.http.post(url, json={"model": "m"}) as resp:
        assert resp.status == 401


async def test_stream_limit_per_tenant(harness: Harness, control: Control) -> None:
    settings = harness.gateway_settings.model_copy(update={"control_stream_max_per_tenant": 1})
    _, runner, url = await harness.start_gateway(settings)
    try:
        async with config_stream(control.http, url, control.tenant.headers) as stream:
            await stream.wait_for(killswitch_off)
            sse = {**control.tenant.headers, "Accept": "text/event-stream"}
            async with control.http.get(url + "/v1/control/config/stream", headers=sse) as resp:
                assert resp.status == 429 and (await resp.json())["code"] == "too_many_streams"
            # A client that does not ask for an event stream is not left hanging on one.
            async with control.http.get(url + "/v1/control/config/stream", headers=control.tenant.headers) as resp:
                assert resp.status == 406 and (await resp.json())["code"] == "not_acceptable"
    finally:
        await runner.cleanup()


async def test_tenant_isolation(harness: Harness, control: Control, http: aiohttp.ClientSession) -> None:
    other = Control(harness, http, await harness.new_tenant())
    _, policy = await control.call("POST", "/v1/policies", policy_body(), expect=201)
    _, route = await control.call("POST", "/v1/model-routes", route_body(), expect=201)
    await control.killswitch(True)

    async def mine_blocked() -> bool:
        return (await control.decide())["decision"] == "block"

    await eventually(mine_blocked)
    answer = await other.decide()
    assert answer["decision"] == "allow" and answer["rule_id"] is None
    async with http.get(other.url + "/v1/control/config", headers=other.tenant.headers) as resp:
        bundle = await resp.json()
    assert bundle["policies"] == [] and bundle["model_routes"] == [] and bundle["killswitch"]["active"] is False
    assert (await other.call("GET", f"/v1/policies/{policy['id']}"))[0] == 403
    assert (await other.call("PATCH", f"/v1/model-routes/{route['id']}", {"enabled": False}))[0] == 403
    assert (await other.call("DELETE", f"/v1/policies/{policy['id']}"))[0] == 403
    _, listed = await other.call("GET", "/v1/policies", expect=200)
    assert listed["items"] == []
    # A project of another tenant cannot be decided on.
    async with http.post(
        other.url + "/v1/control/decide",
        json={"model": "m", "project_id": control.tenant.project_id},
        headers=other.tenant.headers,
    ) as resp:
        assert resp.status == 403
    ch = harness.clickhouse

    async def stored() -> Any:
        rows = await ch.query(
            f"SELECT tenant_id, decision FROM {ch.database}.control_decisions FINAL "
            "WHERE tenant_id IN ({a:String}, {b:String})",
            {"a": control.tenant.id, "b": other.tenant.id},
        )
        return rows if {r["tenant_id"] for r in rows} == {control.tenant.id, other.tenant.id} else None

    rows = await eventually(stored, timeout=30)
    assert all(r["decision"] == "allow" for r in rows if r["tenant_id"] == other.tenant.id)


OWNER, MEMBER, VIEWER, KEY, READ_KEY, INGEST_KEY = "owner", "member", "viewer", "key", "read_key", "ingest_key"
ALLOWED: dict[tuple[str, str], set[str]] = {
    # route → who may call it (everyone else: 403)
    ("GET", "/v1/control/killswitch"): {OWNER, MEMBER, VIEWER, KEY, READ_KEY},
    ("POST", "/v1/control/killswitch/enable"): {OWNER},
    ("POST", "/v1/control/killswitch/disable"): {OWNER},
    ("GET", "/v1/control/safe-default"): {OWNER, MEMBER, VIEWER, KEY, READ_KEY},
    ("PUT", "/v1/control/safe-default"): {OWNER},
    ("GET", "/v1/policies"): {OWNER, MEMBER, VIEWER, KEY, READ_KEY},
    ("POST", "/v1/policies"): {OWNER, MEMBER},
    ("GET", "/v1/policies/{id}"): {OWNER, MEMBER, VIEWER, KEY, READ_KEY},
    ("PATCH", "/v1/policies/{id}"): {OWNER, MEMBER},
    ("DELETE", "/v1/policies/{id}"): {OWNER, MEMBER},
    ("GET", "/v1/model-routes"): {OWNER, MEMBER, VIEWER, KEY, READ_KEY},
    ("POST", "/v1/model-routes"): {OWNER, MEMBER},
    ("GET", "/v1/model-routes/{id}"): {OWNER, MEMBER, VIEWER, KEY, READ_KEY},
    ("PATCH", "/v1/model-routes/{id}"): {OWNER, MEMBER},
    ("DELETE", "/v1/model-routes/{id}"): {OWNER, MEMBER},
    ("GET", "/v1/control/config"): {OWNER, MEMBER, VIEWER, KEY, READ_KEY},
    ("POST", "/v1/control/decide"): {OWNER, MEMBER, VIEWER, KEY, READ_KEY},
    ("POST", "/v1/control/execute"): {OWNER, MEMBER, VIEWER, KEY, READ_KEY},
    ("POST", "/v1/control/decisions"): {KEY, INGEST_KEY},
}


async def test_access_matrix_on_every_control_route(harness: Harness, control: Control) -> None:
    """Every control-plane route against every kind of caller: the allowed ones get past
    authorisation (any status but 401/403), the others get 403 with the reason's code."""
    tenant = control.tenant
    read_key = await _key(control.http, harness, tenant, ["read"])
    ingest_key = await _key(control.http, harness, tenant, ["ingest"])
    callers = {
        OWNER: control.session("owner"),
        MEMBER: control.session("member"),
        VIEWER: control.session("viewer"),
        KEY: tenant.headers,  # the tenant's first key: owner scope
        READ_KEY: {"Authorization": f"Bearer {read_key}"},
        INGEST_KEY: {"Authorization": f"Bearer {ingest_key}"},
    }
    _, policy = await control.call("POST", "/v1/policies", policy_body(), expect=201)
    _, route = await control.call("POST", "/v1/model-routes", route_body(), expect=201)
    bodies = {
        "/v1/policies": policy_body(),
        "/v1/model-routes": route_body(),
        "/v1/control/safe-default": {"enforcement": "deny"},
        "/v1/control/decide": {"model": "m"},
        "/v1/control/execute": {"model": "m"},
        "/v1/control/decisions": {"decisions": [{"model": "m", "decision": "allow"}]},
    }
    checked = 0
    for (method, template), allowed in ALLOWED.items():
        path = template.replace("{id}", policy["id"] if "policies" in template else route["id"])
        for who, headers in callers.items():
            body = (
                bodies.get(template) if method in ("POST", "PUT") else ({"priority": 5} if method == "PATCH" else None)
            )
            if method == "DELETE" or path.endswith(("/enable", "/disable")):
                body = None
            async with control.http.request(method, control.url + path, json=body, headers=headers) as resp:
                data = await resp.json()
                if who in allowed:
                    assert resp.status not in (401, 403), (method, path, who, data)
                else:
                    assert resp.status == 403, (method, path, who, data)
                    assert data["code"] in (
                        "session_required",
                        "api_key_required",
                        "insufficient_role",
                        "insufficient_scope",
                    )
            checked += 1
            if method == "DELETE" and who in allowed:  # deleted: recreate for the next caller
                if "policies" in template:
                    await control.call("PATCH", path, {"status": "active"}, expect=200)
                else:
                    _, route = await control.call("POST", "/v1/model-routes", route_body(), expect=201)
                    path = template.replace("{id}", route["id"])
    assert checked == len(ALLOWED) * len(callers)
    async with control.http.get(control.url + "/v1/control/config") as resp:
        assert resp.status == 401
    stream_headers = {"Authorization": f"Bearer {ingest_key}"}
    async with control.http.get(control.url + "/v1/control/config/stream", headers=stream_headers) as resp:
        assert resp.status == 403
    await asyncio.sleep(0)


async def test_a_revoked_keys_stream_ends(control: Control) -> None:
    _, created = await control.call("POST", "/v1/apikeys", {"name": "streamer"}, expect=201)
    headers = {"Authorization": f"Bearer {created['key']}"}

    async def known() -> bool:
        async with control.http.get(control.url + "/v1/control/config", headers=headers) as resp:
            return resp.status == 200

    await eventually(known)
    async with config_stream(control.http, control.url, headers) as stream:
        await stream.wait_for(killswitch_off)
        started = time.monotonic()
        await control.call("DELETE", f"/v1/apikeys/{created['id']}", expect=200)
        await asyncio.wait_for(stream.ended.wait(), 10)
        print(f"stream of a revoked key ended {(time.monotonic() - started) * 1000:.0f} ms after the revocation")
