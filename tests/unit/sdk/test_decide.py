"""The decision semantics, table-driven: one bundle, one signals view, one request per row."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from trulayer_sdk.policy import (
    Decision,
    DecisionRequest,
    PolicyBundle,
    SafeDefault,
    Signals,
    WindowStats,
    decide,
    rollout_bucket,
    safe_default_decision,
)
from trulayer_sdk.policy.bundle import KillSwitch

NOW = 1_800_000_000.0
P = "proj-1"


def policy(pid: str, trigger: str = "failure_rate", action: str = "block", **fields: Any) -> dict[str, Any]:
    rule = {"threshold": 0.5, "window_minutes": 5, **fields.pop("rule", {})}
    return {
        "id": pid,
        "name": pid,
        "trigger_type": trigger,
        "action_type": action,
        "rule": rule,
        "rollout_pct": 100,
        "dry_run": False,
        "max_retry_depth": 3,
        "max_cascade_depth": 5,
        "priority": 100,
        "status": "active",
        **fields,
    }


def route(rid: str, ctype: str = "always", action: str = "fallback_model", model: str | None = "backup", **fields: Any):
    return {
        "id": rid,
        "name": rid,
        "condition": {"type": ctype, "threshold": fields.pop("threshold", None), "window_minutes": 5},
        "action": {"type": action, "model": model},
        "priority": 100,
        "enabled": True,
        **fields,
    }


def bundle(policies=(), routes=(), killswitch=None, **extra: Any) -> PolicyBundle:
    return PolicyBundle.from_json(
        {
            "version": 1,
            "killswitch": killswitch or {"active": False, "projects": []},
            "policies": list(policies),
            "model_routes": list(routes),
            "safe_default": {"enforcement": "deny", "routing": "primary_only"},
            "projects": {"default": P},
            "default_project_id": P,
            **extra,
        }
    )


def window(error_rate: float = 0.0, *, model: str = "gpt-4o", count: int = 10, age: float = 0.0, **fields: Any):
    return WindowStats(P, model, 300, NOW - age, count=count, error_rate=error_rate, **fields)


HOT = Signals([window(0.9, latency_p95=900.0, cost_per_call=0.2, eval_scores={"relevance": 0.2})])
COLD = Signals([window(0.0, latency_p95=100.0, cost_per_call=0.01, eval_scores={"relevance": 0.9})])
REQ = DecisionRequest("gpt-4o", P, "key-1", NOW)


def d(kind: str, target: str | None, rule: str | None, reason: str, **fields: Any) -> tuple[Any, ...]:
    return (kind, target, rule, reason, fields.get("dry_run", False))


CASES: list[tuple[str, PolicyBundle, Signals, DecisionRequest, tuple[Any, ...]]] = [
    ("nothing configured allows", bundle(), HOT, REQ, d("allow", "gpt-4o", None, "no_rule")),
    (
        "kill switch over everything, even an allow-all route",
        bundle([policy("p")], [route("r")], {"active": True, "reason": "incident"}),
        COLD,
        REQ,
        d("block", None, None, "kill_switch"),
    ),
    (
        "project kill switch blocks its project",
        bundle(killswitch={"active": False, "projects": [{"project_id": P}]}),
        COLD,
        REQ,
        d("block", None, None, "kill_switch"),
    ),
    (
        "project kill switch leaves other projects",
        bundle(killswitch={"active": False, "projects": [{"project_id": "other"}]}),
        COLD,
        REQ,
        d("allow", "gpt-4o", None, "no_rule"),
    ),
    ("failure_rate fires above its threshold", bundle([policy("p")]), HOT, REQ, d("block", None, "p", "policy_block")),
    ("failure_rate quiet below it", bundle([policy("p")]), COLD, REQ, d("allow", "gpt-4o", None, "no_rule")),
    ("no window: nothing fires", bundle([policy("p")]), Signals(), REQ, d("allow", "gpt-4o", None, "no_rule")),
    (
        "a stale window (ended more than its length ago) does not fire",
        bundle([policy("p")]),
        Signals([window(0.9, age=301)]),
        REQ,
        d("allow", "gpt-4o", None, "no_rule"),
    ),
    (
        "min_requests: too few traces do not fire",
        bundle([policy("p", rule={"min_requests": 20})]),
        HOT,
        REQ,
        d("allow", "gpt-4o", None, "no_rule"),
    ),
    (
        "the window of another model does not fire",
        bundle([policy("p")]),
        Signals([window(0.9, model="gpt-3.5")]),
        REQ,
        d("allow", "gpt-4o", None, "no_rule"),
    ),
    (
        "lower priority value wins",
        bundle([policy("a", priority=50, action="fallback_model", rule={"model": "m50"}), policy("b", priority=10)]),
        HOT,
        REQ,
        d("block", None, "b", "policy_block"),
    ),
    (
        "equal priority: lower id wins",
        bundle([policy("b", action="fallback_model", rule={"model": "mb"}), policy("a")]),
        HOT,
        REQ,
        d("block", None, "a", "policy_block"),
    ),
    (
        "fallback_model routes",
        bundle([policy("p", action="fallback_model", rule={"model": "gpt-4o-mini"})]),
        HOT,
        REQ,
        d("route", "gpt-4o-mini", "p", "fallback_model"),
    ),
    (
        "cascade depth limit: no fallback past max_cascade_depth",
        bundle([policy("p", action="fallback_model", max_cascade_depth=2, rule={"model": "m"})]),
        HOT,
        replace(REQ, cascade_depth=2),
        d("block", None, "p", "max_cascade_depth"),
    ),
    (
        "cascade depth below the limit still routes",
        bundle([policy("p", action="fallback_model", max_cascade_depth=2, rule={"model": "m"})]),
        HOT,
        replace(REQ, cascade_depth=1),
        d("route", "m", "p", "fallback_model"),
    ),
    (
        "retry allowed below max_retry_depth",
        bundle([policy("p", action="retry", max_retry_depth=3)]),
        HOT,
        replace(REQ, retry_depth=2),
        d("allow", "gpt-4o", "p", "retry"),
    ),
    (
        "retry depth limit",
        bundle([policy("p", action="retry", max_retry_depth=3)]),
        HOT,
        replace(REQ, retry_depth=3),
        d("block", None, "p", "max_retry_depth"),
    ),
    (
        "escalate allows (and fires policy.escalated)",
        bundle([policy("p", action="escalate")]),
        HOT,
        REQ,
        d("allow", "gpt-4o", "p", "escalate"),
    ),
    (
        "dry run: allows, names what it would have done",
        bundle([policy("p", dry_run=True)]),
        HOT,
        REQ,
        d("allow", "gpt-4o", "p", "dry_run:policy_block", dry_run=True),
    ),
    (
        "dry run never hides an enforcing rule after it",
        bundle(
            [
                policy("dry", priority=1, dry_run=True),
                policy("real", priority=2, action="fallback_model", rule={"model": "m"}),
            ]
        ),
        HOT,
        REQ,
        d("route", "m", "real", "fallback_model"),
    ),
    (
        "eval_score fires below its threshold",
        bundle([policy("p", "eval_score", rule={"metric_name": "relevance", "threshold": 0.5})]),
        HOT,
        REQ,
        d("block", None, "p", "policy_block"),
    ),
    (
        "eval_score quiet above it",
        bundle([policy("p", "eval_score", rule={"metric_name": "relevance", "threshold": 0.5})]),
        COLD,
        REQ,
        d("allow", "gpt-4o", None, "no_rule"),
    ),
    (
        "anomaly within the window fires",
        bundle([policy("p", "anomaly", rule={"anomaly_types": ["latency_spike"]})]),
        Signals(anomalies={P: {"latency_spike": NOW - 60}}),
        REQ,
        d("block", None, "p", "policy_block"),
    ),
    (
        "anomaly of another type or too old does not",
        bundle([policy("p", "anomaly", rule={"anomaly_types": ["latency_spike"]})]),
        Signals(anomalies={P: {"latency_spike": NOW - 400, "volume_anomaly": NOW}}),
        REQ,
        d("allow", "gpt-4o", None, "no_rule"),
    ),
    (
        "policy scoped to other models does not apply",
        bundle([policy("p", rule={"models": ["claude"]})]),
        HOT,
        REQ,
        d("allow", "gpt-4o", None, "no_rule"),
    ),
    (
        "policy scoped to another project does not apply",
        bundle([policy("p", rule={"project_id": "other"})]),
        HOT,
        REQ,
        d("allow", "gpt-4o", None, "no_rule"),
    ),
    ("rollout 0 never applies", bundle([policy("p", rollout_pct=0)]), HOT, REQ, d("allow", "gpt-4o", None, "no_rule")),
    (
        "paused policies never decide",
        bundle([policy("p", status="paused")]),
        HOT,
        REQ,
        d("allow", "gpt-4o", None, "no_rule"),
    ),
    (
        "policies before routes",
        bundle([policy("p")], [route("r", priority=1)]),
        HOT,
        REQ,
        d("block", None, "p", "policy_block"),
    ),
    ("always route", bundle(routes=[route("r")]), COLD, REQ, d("route", "backup", "r", "route_fallback")),
    (
        "routes by priority",
        bundle(routes=[route("slow", priority=20, model="b20"), route("fast", priority=5, model="b5")]),
        COLD,
        REQ,
        d("route", "b5", "fast", "route_fallback"),
    ),
    (
        "error_rate condition holds above threshold",
        bundle(routes=[route("r", "error_rate", threshold=0.5)]),
        HOT,
        REQ,
        d("route", "backup", "r", "route_fallback"),
    ),
    (
        "error_rate condition quiet below it: next route by priority",
        bundle(routes=[route("r", "error_rate", threshold=0.5, priority=1), route("z", action="block", model=None)]),
        COLD,
        REQ,
        d("block", None, "z", "route_block"),
    ),
    (
        "latency_threshold on p95",
        bundle(routes=[route("r", "latency_threshold", threshold=500)]),
        HOT,
        REQ,
        d("route", "backup", "r", "route_fallback"),
    ),
    (
        "cost_threshold on cost per call",
        bundle(routes=[route("r", "cost_threshold", threshold=0.1)]),
        COLD,
        REQ,
        d("allow", "gpt-4o", None, "no_rule"),
    ),
    (
        "a condition reads its own window length: a 10-minute route ignores the 5-minute window",
        bundle(
            routes=[
                {
                    **route("r", "error_rate", threshold=0.5),
                    "condition": {"type": "error_rate", "threshold": 0.5, "window_minutes": 10},
                }
            ]
        ),
        HOT,
        REQ,
        d("allow", "gpt-4o", None, "no_rule"),
    ),
    (
        "… and fires on its own",
        bundle(
            routes=[
                {
                    **route("r", "error_rate", threshold=0.5),
                    "condition": {"type": "error_rate", "threshold": 0.5, "window_minutes": 10},
                }
            ]
        ),
        Signals([WindowStats(P, "gpt-4o", 600, NOW, count=10, error_rate=0.9)]),
        REQ,
        d("route", "backup", "r", "route_fallback"),
    ),
    (
        "log_only notes and allows",
        bundle(routes=[route("r", action="log_only", model=None)]),
        COLD,
        REQ,
        d("allow", "gpt-4o", "r", "route_log_only", dry_run=True),
    ),
    (
        "a route scoped to other models does not apply",
        bundle(routes=[route("r", models=["claude"])]),
        COLD,
        REQ,
        d("allow", "gpt-4o", None, "no_rule"),
    ),
    (
        "an unknown action (newer control plane) fails closed",
        bundle([policy("p", action="quarantine")]),
        HOT,
        REQ,
        d("block", None, "p", "unsupported_policy"),
    ),
]


@pytest.mark.parametrize(("name", "the_bundle", "signals", "request_", "expected"), CASES, ids=[c[0] for c in CASES])
def test_decide(name: str, the_bundle: PolicyBundle, signals: Signals, request_: DecisionRequest, expected: tuple):
    got = decide(the_bundle, signals, request_)
    assert (got.decision, got.target_model, got.rule_id, got.reason, got.dry_run) == expected, got


def test_dry_run_reports_what_it_would_have_done():
    got = decide(bundle([policy("p", dry_run=True, action="fallback_model", rule={"model": "m"})]), HOT, REQ)
    assert (got.would_decision, got.would_target_model, got.action) == ("route", "m", "fallback_model")
    assert not got.escalates
    escalation = decide(bundle([policy("p", action="escalate")]), HOT, REQ)
    assert escalation.escalates
    assert not decide(bundle([policy("p", action="escalate", dry_run=True)]), HOT, REQ).escalates


def test_rollout_is_deterministic_by_request_key_and_near_its_share():
    b = bundle([policy("p", rollout_pct=30)])
    keys = [f"req-{i}" for i in range(4000)]
    first = [decide(b, HOT, replace(REQ, request_key=k)).decision for k in keys]
    again = [decide(b, HOT, replace(REQ, request_key=k)).decision for k in keys]
    assert first == again
    share = first.count("block") / len(keys)
    assert 0.27 < share < 0.33, share
    assert all((rollout_bucket("p", k) < 30) == (dec == "block") for k, dec in zip(keys, first, strict=True))


def test_route_pct_splits_by_key_within_the_rollout():
    b = bundle([policy("p", action="route_pct", rule={"model": "canary", "pct": 10})])
    routed = [decide(b, HOT, replace(REQ, request_key=f"k{i}")) for i in range(4000)]
    share = sum(r.decision == "route" for r in routed) / len(routed)
    assert 0.08 < share < 0.12
    assert {r.target_model for r in routed if r.decision == "route"} == {"canary"}


def test_bundle_resolves_project_names_and_the_callers_default():
    b = bundle()
    assert b.project_id("default") == P
    assert b.project_id(None) == P
    assert b.project_id("some-id") == "some-id"


def test_safe_default():
    request = DecisionRequest("gpt-4o", P, "k", NOW)
    deny = safe_default_decision(SafeDefault("deny"), request)
    allow = safe_default_decision(SafeDefault("allow"), request)
    assert (deny.decision, deny.reason) == ("block", "control_unreachable")
    assert (allow.decision, allow.target_model) == ("allow", "gpt-4o")  # primary only: never routed
    stuck = safe_default_decision(SafeDefault("allow"), request, KillSwitch(active=True))
    assert stuck == Decision("block", None, None, "kill_switch", False, "kill_switch", "killswitch")
