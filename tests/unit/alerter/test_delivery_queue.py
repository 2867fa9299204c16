"""Fairness of the webhook delivery queue (issue 15, finding 8) and the minimum cooldown."""

from __future__ import annotations

from datetime import UTC, datetime

from alerter.delivery_queue import FairQueue
from alerter.evaluator import Evaluator
from alerter.settings import AlerterSettings
from trulayer_common.config import ConfigRecord, ConfigState
from trulayer_common.config.entities import AlertRule


def test_a_busy_tenant_gets_one_turn_then_the_others_go() -> None:
    queue: FairQueue[str] = FairQueue(per_tenant=1000, total=10_000, tenant_slots=100)
    for n in range(1000):
        assert queue.put("storm", f"s{n}")
    assert queue.put("quiet", "q0")
    taken = [queue.take() for _ in range(3)]
    assert taken == [("storm", "s0"), ("quiet", "q0"), ("storm", "s1")]


def test_each_tenant_has_its_own_bound_and_its_own_slots() -> None:
    queue: FairQueue[int] = FairQueue(per_tenant=3, total=5, tenant_slots=2)
    assert [queue.put("a", n) for n in range(4)] == [True, True, True, False]  # a's queue is full
    assert queue.put("b", 0) and queue.put("b", 1)
    assert not queue.put("c", 0)  # everyone's bound
    assert queue.take() == ("a", 0) and queue.take() == ("b", 0)
    assert queue.take() == ("a", 1) and queue.take() == ("b", 1)
    assert queue.take() is None  # a has 2 in flight: its third waits for a slot
    queue.done("a")
    assert queue.take() == ("a", 2) and queue.waiting == 0


def test_rules_stored_without_cooldown_get_the_minimum() -> None:
    """A rule written before the one-minute minimum existed (cooldown 0) no longer fires on every record."""
    state = ConfigState()
    rule = AlertRule(
        id="r",
        tenant_id="t",
        metric="volume",
        operator="gte",
        threshold=1,
        cooldown_minutes=0,
        created_at=datetime.now(UTC),
    )
    state.apply(ConfigRecord(entity=rule, at=datetime.now(UTC)))
    ev = Evaluator(AlerterSettings(), state, {}, {}, {}, {})
    fired = [
        len(ev.process({"tenant_id": "t", "project_id": "p", "points": [[1000.0 + s, "", 1, 0, 0]]}).alerts)
        for s in (0, 1, 30, 59, 60)
    ]
    assert fired == [1, 0, 0, 0, 1]
