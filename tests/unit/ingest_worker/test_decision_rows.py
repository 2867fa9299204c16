"""The decision log's transform: records → rows of control_decisions, every column filled."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from ingest_worker.decision_rows import TABLE, decision_rows
from trulayer_common.topics import control_decisions

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
COLUMNS = {
    "tenant_id", "project_id", "id", "decided_at", "received_at", "source", "decision", "requested_model",
    "target_model", "rule_id", "reason", "action", "dry_run", "config_type", "status", "loadbalance_rule_id",
    "ratelimit_rule_id", "budget_rule_id", "loadbalance_target_attempt_count", "retry_depth", "cascade_depth",
    "would_decision", "would_target_model", "request_id", "metadata",
}  # fmt: skip


def test_rows_of_a_full_and_a_minimal_decision() -> None:
    full = control_decisions.ControlDecision(  # type: ignore[typeddict-item]
        id="d1",
        decided_at=AT,
        source="server",
        project_id="p",
        requested_model="gpt-4o",
        target_model="backup",
        decision="route",
        rule_id="r1",
        reason="route_fallback",
        config_type="model_route",
        status="success",
        loadbalance_rule_id="r1",
        loadbalance_target_attempt_count=2,
        cascade_depth=1,
        metadata={"team": "search", "n": 3},
    )
    minimal = control_decisions.ControlDecision(
        id="d2", decided_at=AT, source="sdk", project_id="p", requested_model="m", decision="block"
    )
    value = control_decisions.encode([full, minimal], tenant_id="t", project_id="p", request_id="req", received_at=AT)
    rows = decision_rows(control_decisions.decode(value))[TABLE]
    assert [set(r) for r in rows] == [COLUMNS, COLUMNS]
    first, second = rows
    assert (first["tenant_id"], first["loadbalance_rule_id"], first["loadbalance_target_attempt_count"]) == (
        "t",
        "r1",
        2,
    )
    assert orjson.loads(first["metadata"]) == {"team": "search", "n": 3}
    assert first["decided_at"].startswith("2026-03-01T12:00:00")
    assert (second["target_model"], second["rule_id"], second["loadbalance_target_attempt_count"]) == ("", "", 0)
    assert (second["metadata"], second["dry_run"]) == ("{}", False)
