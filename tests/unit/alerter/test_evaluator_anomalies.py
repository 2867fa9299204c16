from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from alerter.anomalies import Baseline, observe, severity_of
from alerter.evaluator import Evaluator
from alerter.observations import observations_from_evaluations, observations_from_points, observations_from_traces
from alerter.settings import AlerterSettings
from alerter.webhooks import backoff_delay
from trulayer_common.config import ConfigRecord, ConfigState
from trulayer_common.config.entities import AlertRule
from trulayer_common.outbound import OutboundResult
from trulayer_common.topics import InvalidRecordError, eval_results
from trulayer_common.webhook_signature import sign, signed_headers, verify

NOW = datetime.now(UTC)


def evaluator(*rules: AlertRule, **settings: Any) -> Evaluator:
    state = ConfigState()
    for r in rules:
        state.apply(ConfigRecord(entity=r, at=NOW))
    return Evaluator(AlerterSettings(**settings), state, {}, {}, {}, {})


def rule(**fields: Any) -> AlertRule:
    base = {"id": "r1", "tenant_id": "t", "metric": "error_rate", "operator": "gt", "threshold": 50}
    return AlertRule(created_at=NOW, **{**base, **fields})


def msg(points: list[list[Any]], scores: list[list[Any]] | None = None) -> dict[str, Any]:
    return {"tenant_id": "t", "project_id": "p", "points": points, "scores": scores or []}


def test_fires_once_then_cooldown_in_event_time() -> None:
    ev = evaluator(rule(window_secs=60, cooldown_minutes=5))
    assert ev.process(msg([[1000.0, "m", 10, 0, None]])).alerts == []
    alerts = ev.process(msg([[1001.0, "m", 10, 1, None], [1001.0, "m", 10, 1, None]])).alerts
    assert [a["metric_value"] for a in alerts] == [pytest.approx(200 / 3)]
    assert ev.process(msg([[1100.0, "m", 10, 1, None]])).alerts == []  # in cooldown
    again = ev.process(msg([[1301.0, "m", 10, 1, None]])).alerts  # 300 s after: out of cooldown
    assert len(again) == 1 and again[0]["id"] != alerts[0]["id"]


def test_disabled_other_project_and_model_scope() -> None:
    ev = evaluator(
        rule(id="off", enabled=False),
        rule(id="other", project_id="elsewhere"),
        rule(id="slow", metric="latency_p95", operator="gte", threshold=1000, model="slow"),
    )
    assert ev.process(msg([[1000.0, "fast", 5000, 1, None]])).alerts == []
    fired = ev.process(msg([[1001.0, "slow", 1000, 0, None]])).alerts
    assert [a["rule_id"] for a in fired] == ["slow"]


def test_window_slides_and_old_buckets_expire() -> None:
    ev = evaluator(rule(metric="volume", operator="gte", threshold=3, window_secs=60), max_window_secs=60)
    ev.process(msg([[1000.0, "", None, 0, None], [1000.0, "", None, 0, None]]))
    # 2 traces 100 s earlier are out of the 60 s window: 1 + 0 < 3.
    assert ev.process(msg([[1100.0, "", None, 0, None]])).alerts == []
    ev.process(msg([[1300.0, "", None, 0, None]]))
    assert not any(key.endswith("|1000") for key in ev.buckets)


def test_memoised_window_sees_late_points_and_matches_a_fresh_evaluator() -> None:
    """The merged older buckets are reused between messages; a late point that replaces one of
    them must invalidate the reuse. A fresh evaluator over the same stored state agrees."""
    volume = rule(metric="volume", operator="gte", threshold=6, window_secs=60, cooldown_minutes=60)
    ev = evaluator(volume)
    for ts in (1000.0, 1010.0, 1020.0, 1030.0):  # 4 points in 4 buckets; the window memo is built
        assert ev.process(msg([[ts, "", None, 0, None]])).alerts == []
    assert ev.process(msg([[1031.0, "", None, 0, None]])).alerts == []  # 5 < 6: memo reused
    fresh = Evaluator(ev.settings, ev.config, dict(ev.buckets), dict(ev.meta), {}, {})
    assert fresh.window("t|p", "", 1031.0, 60).count == ev.window("t|p", "", 1031.0, 60).count == 5
    # A late point lands in the (older) 1010 bucket: 6 in the window → fires.
    (alert,) = ev.process(msg([[1011.0, "", None, 0, None]])).alerts
    assert alert["metric_value"] == 6
    assert ev.window("t|p", "", 1031.0, 60).count == 6


def test_score_rules_use_evaluations() -> None:
    ev = evaluator(rule(metric="hallucination_score", operator="gt", threshold=0.5))
    assert ev.process(msg([], [[1000.0, "", "hallucination", 0.4]])).alerts == []
    assert len(ev.process(msg([], [[1001.0, "", "hallucination", 0.9]])).alerts) == 1


def test_anomaly_after_warmup() -> None:
    ev = evaluator(anomaly_bucket_secs=60, anomaly_warmup_buckets=5, anomaly_min_traces=3)
    found: list[dict[str, Any]] = []
    for minute in range(8):
        latency = 100 + minute % 3
        found += ev.process(msg([[minute * 60.0 + 1, "", latency, 0, None] for _ in range(5)])).anomalies
    assert found == []
    found += ev.process(msg([[8 * 60.0 + 1, "", 5000, 0, None] for _ in range(5)])).anomalies
    found += ev.process(msg([[9 * 60.0 + 1, "", 100, 0, None] for _ in range(5)])).anomalies  # closes minute 8
    assert [a["type"] for a in found] == ["latency_spike"]
    assert found[0]["severity"] == "critical"


def test_baseline_and_severity() -> None:
    b = Baseline()
    for _ in range(20):
        assert observe(b, "volume", 100, alpha=0.2, warmup=10, z_threshold=3) is None
    drop = observe(b, "volume", 10, alpha=0.2, warmup=10, z_threshold=3)
    assert drop is not None and drop.type == "volume_anomaly" and drop.z_score < 0
    assert [severity_of(z) for z in (3, 4, 6, 10)] == ["low", "medium", "high", "critical"]


def test_observations_event_time_capped_at_receipt() -> None:
    envelope = (
        b'{"schema_version":1,"tenant_id":"t","project_id":"p","received_at":"2024-01-01T00:00:00Z",'
        b'"request_id":"r","payload":{"traces":[{"id":"a","project_id":"p","started_at":"2030-01-01T00:00:00Z",'
        b'"model":"m","latency_ms":5,"error":"x","cost":0.5},{"id":"b","project_id":"q","started_at":"2023-12-31T23:59:00Z"}]}}'
    )
    groups = observations_from_traces(envelope)
    assert groups["t|p"]["points"] == [[1704067200.0, "m", 5.0, 1, 0.5]]
    assert groups["t|q"]["points"][0][0] == 1704067140.0
    with pytest.raises(InvalidRecordError):
        observations_from_traces(b"[1]")
    evaluation = eval_results.Evaluation.model_validate(
        {
            "id": "e",
            "trace_id": "a",
            "project_id": "p",
            "metric_name": "hallucination",
            "evaluator_type": "llm",
            "status": "complete",
            "score": 0.7,
            "created_at": "2024-01-01T00:00:00Z",
        }
    )
    received = datetime(2024, 1, 1, 0, 1, tzinfo=UTC)
    evals = observations_from_evaluations(eval_results.encode([evaluation], tenant_id="t", received_at=received))
    assert evals["t|p"]["scores"] == [[1704067200.0, "", "hallucination", 0.7]]
    pending = evaluation.model_copy(update={"status": "pending", "score": None})
    assert observations_from_evaluations(eval_results.encode([pending], tenant_id="t")) == {}


def test_signature_and_retry_policy() -> None:
    headers = signed_headers("s" * 16, b'{"a":1}')
    assert verify("s" * 16, headers["X-Trulayer-Timestamp"], headers["X-Trulayer-Signature"], b'{"a":1}')
    assert not verify("s" * 16, headers["X-Trulayer-Timestamp"], headers["X-Trulayer-Signature"], b'{"a":2}')
    assert not verify("s" * 16, "1", sign("s" * 16, 1, b"x"), b"x")  # too old: a replay
    retryable = [OutboundResult("http_error", s).retryable for s in (500, 503, 410, 429)]
    assert retryable == [True, True, False, False]
    delays = [backoff_delay(n, 0.5, 4.0) for n in range(1, 10) for _ in range(20)]
    assert all(0 <= d <= 4.0 for d in delays)
    assert max(backoff_delay(1, 0.5, 4.0) for _ in range(50)) <= 0.5


def test_points_header_gives_the_observations_of_the_record() -> None:
    from trulayer_common.schemas import TRACE
    from trulayer_common.topics import traces as trace_records

    received = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    traces = [
        TRACE.validate_python(t)
        for t in (
            {"id": "a", "project_id": "p1", "started_at": "2026-11-22T11:59:00Z", "model": "m", "latency_ms": 12},
            {"id": "b", "project_id": "p1", "started_at": "2026-11-22T13:00:00Z", "error": "boom", "cost": 0.5},
            {"id": "c", "project_id": "p2", "started_at": "2026-11-22T11:00:00", "latency_ms": 0},  # naive: UTC
            {"id": "d", "project_id": "p2", "started_at": "2026-11-22T12:30:00+02:00", "error": ""},
        )
    ]
    value = trace_records.encode(tenant_id="t", project_id="p1", received_at=received, request_id="r", traces=traces)
    from_value = observations_from_traces(value)
    from_header = observations_from_points(trace_records.encode_points("t", received, traces))
    assert from_header == from_value
    (b,) = [p for p in from_value["t|p1"]["points"] if p[3] == 1]
    assert b[0] == received.timestamp()  # a start in the future is capped at receipt
    assert sorted(from_value) == ["t|p1", "t|p2"]
    with pytest.raises(InvalidRecordError):
        observations_from_points(b'{"groups": []}')
