"""Live window summaries (per model only for tenants whose policies read them) and escalations."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from alerter.escalations import ESCALATED_EVENT, Escalations
from alerter.evaluator import MAX_TRACKED_MODELS, Evaluator
from alerter.settings import AlerterSettings
from alerter.signals import DEFAULT_WINDOW_SECS, SignalPublisher, summary
from alerter.windows import BucketAgg
from trulayer_common.config import ConfigRecord, ConfigState
from trulayer_common.config.control_entities import ModelRoute, Policy, PolicyRuleSpec
from trulayer_common.topics import InvalidRecordError, control_decisions, signals

NOW = datetime.now(UTC)


def state_with(*entities: Any) -> ConfigState:
    state = ConfigState()
    for entity in entities:
        state.apply(ConfigRecord(entity=entity, at=NOW))
    return state


def route(tenant: str = "t", minutes: int = 10) -> ModelRoute:
    return ModelRoute(
        id="r",
        tenant_id=tenant,
        name="r",
        condition={"type": "error_rate", "threshold": 0.5, "window_minutes": minutes},
        action={"type": "block"},
        created_at=NOW,
    )


def msg(tenant: str, points: list[list[Any]]) -> dict[str, Any]:
    return {"tenant_id": tenant, "project_id": "p", "points": points, "scores": []}


def test_summary_of_a_window() -> None:
    window = BucketAgg()
    for latency, error, cost in ((100, 0, 0.1), (200, 1, 0.3), (300, 1, None), (400, 0, 0.2)):
        window.add_point(latency, error, cost)
    window.add_score("relevance", 0.4)
    window.add_score("relevance", 0.6)
    got = summary(window, 60)
    assert (got.count, got.error_rate, got.total_cost, got.window_secs) == (4, 0.5, pytest.approx(0.6), 60)
    assert got.cost_per_call == pytest.approx(0.15) and got.eval_scores == {"relevance": pytest.approx(0.5)}
    assert got.latency_p50 is not None and 150 <= got.latency_p50 <= 250
    empty = summary(BucketAgg(), 60)
    assert (empty.count, empty.error_rate, empty.latency_p95) == (0, None, None)


def test_per_model_windows_only_for_tenants_whose_control_reads_them() -> None:
    ev = Evaluator(AlerterSettings(), state_with(route("ruled")), {}, {}, {}, {})
    plain = ev.process(msg("plain", [[1000.0, "gpt-4o", 100, 1, None]]))
    ruled = ev.process(msg("ruled", [[1000.0, "gpt-4o", 100, 1, None], [1000.0, "claude", 50, 0, None]]))
    assert plain.models == set() and plain.watermark == 1000.0
    assert ruled.models == {"gpt-4o", "claude"}
    assert ev.window("ruled|p", "gpt-4o", 1000.0, 60).errors == 1
    assert ev.window("ruled|p", "claude", 1000.0, 60).count == 1
    assert ev.window("plain|p", "gpt-4o", 1000.0, 60).count == 0
    many = [[1001.0, f"m{i}", 10, 0, None] for i in range(MAX_TRACKED_MODELS + 20)]
    assert len(ev.process(msg("ruled", many)).models) <= MAX_TRACKED_MODELS


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []

    async def send(self, topic: str, value: bytes, key: bytes) -> Any:
        self.sent.append((topic, key, value))
        future: Any = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


async def test_publisher_sends_the_latest_state_of_each_pair_once_and_only_for_tenants_with_rules() -> None:
    state = state_with(route("t", minutes=10))
    ev = Evaluator(AlerterSettings(), state, {}, {}, {}, {})
    producer = _Producer()
    publisher = SignalPublisher(AlerterSettings(), state, ev, producer)  # type: ignore[arg-type]
    for ts in (1000.0, 1001.0):
        publisher.observe("t", "p", ev.process(msg("t", [[ts, "gpt-4o", 100, 1, 0.01]])))
    publisher.observe("plain", "p", ev.process(msg("plain", [[1000.0, "gpt-4o", 100, 1, 0.01]])))
    assert publisher.windows_of("t") == [DEFAULT_WINDOW_SECS, 600]
    assert publisher.windows_of("other") == [DEFAULT_WINDOW_SECS]
    assert await publisher.publish() == 2  # ("t", "p", "") and ("t", "p", "gpt-4o"), once each
    assert await publisher.publish() == 0
    records = {key: value for _, key, value in producer.sent}
    assert set(records) == {b"t|p|", b"t|p|gpt-4o"}  # nothing for a tenant without rules
    rec = signals.decode(records[b"t|p|gpt-4o"]).payload
    assert rec.count == 2 and rec.error_rate == 1.0 and [w.window_secs for w in rec.windows] == [300, 600]
    assert rec.as_of.timestamp() == 1001.0


def decision_value(*, action: str = "escalate", dry_run: bool = False, decided_at: datetime | None = None) -> bytes:
    decision = control_decisions.ControlDecision(  # type: ignore[typeddict-item]
        id=f"d-{time.monotonic_ns()}",
        decided_at=decided_at or datetime.now(UTC),
        source="server",
        project_id="p",
        requested_model="m",
        decision="allow",
        rule_id="pol",
        reason=action,
        action=action,
        dry_run=dry_run,
    )
    return control_decisions.encode([decision], tenant_id="t", project_id="p", request_id="")


def test_escalations_once_per_cooldown_never_dry_run_or_stale() -> None:
    policy = Policy(
        id="pol",
        tenant_id="t",
        name="page",
        trigger_type="failure_rate",
        action_type="escalate",
        rule=PolicyRuleSpec(threshold=0.1),
        created_at=NOW,
    )
    sent: list[tuple[str, str, dict[str, Any]]] = []
    escalations = Escalations(state_with(policy), lambda t, e, b, hooks: sent.append((t, e, b)), 60, 300)
    now = time.time()
    assert len(escalations.handle(decision_value(), now)) == 1
    assert escalations.handle(decision_value(), now + 30) == []  # cooldown
    assert escalations.handle(decision_value(action="retry"), now + 90) == []
    assert escalations.handle(decision_value(dry_run=True), now + 90) == []
    assert escalations.handle(decision_value(decided_at=datetime.fromtimestamp(now - 1000, UTC)), now + 90) == []
    assert len(escalations.handle(decision_value(), now + 61)) == 1
    tenant, event, body = sent[0]
    assert (tenant, event, body["event"]) == ("t", ESCALATED_EVENT, ESCALATED_EVENT)
    assert body["data"]["policy_name"] == "page" and body["data"]["policy_id"] == "pol"
    with pytest.raises(InvalidRecordError):
        escalations.handle(b"not json")
