from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from ingest_worker.rows import to_rows
from trulayer_common.clickhouse.table_sink import TableRows
from trulayer_common.schemas import TRACE, TraceRequest
from trulayer_common.topics import InvalidRecordError, traces

RECEIVED = datetime(2026, 3, 7, 12, 34, 56, 789000, tzinfo=UTC)


def envelope(*sent: TraceRequest, retention_days: dict[str, int] | None = None) -> bytes:
    return traces.encode(
        tenant_id="t1",
        project_id="p1",
        received_at=RECEIVED,
        request_id="r1",
        traces=list(sent),
        retention_days=retention_days,
    )


def rows_of(value: bytes | None, retention_days: int = 30) -> TableRows:
    """What the trace writer's transform does with a record value."""
    return to_rows(traces.decode(value), retention_days)


def full_trace(**kw) -> TraceRequest:
    data = {"id": "tr1", "project_id": "p1", "started_at": RECEIVED, **kw}
    return TRACE.validate_python(data)


def test_trace_spans_and_events_become_rows():
    trace = full_trace(
        input={"q": 1},
        output="a",
        error="rate limit exceeded",
        tags=["x"],
        spans=[{"id": "s1", "name": "llm", "prompt_tokens": 7, "completion_tokens": 3}],
        events=[{"id": "e1", "message": "m", "level": "error"}],
    )
    rows = rows_of(envelope(trace), retention_days=30)
    (t,) = rows["traces"]
    assert t["tenant_id"] == "t1" and t["id"] == "tr1"
    # JSON values stay as parsed: the engine stores them as their JSON text (INSERT_SETTINGS).
    assert t["input"] == {"q": 1} and t["output"] == "a"
    assert (t["status"], t["failure_type"]) == ("error", "rate_limit")
    assert (t["prompt_tokens"], t["completion_tokens"], t["total_tokens"]) == (7, 3, 10)
    assert t["started_at"] == "2026-03-07T12:34:56.789000Z"
    assert t["tag_list"] == ["x"] and "tag_map" not in t and "tags" not in t
    assert "spans" not in t and "events" not in t  # rows of their own, not columns
    assert (t["metadata"], t["span_count"], t["retention_days"]) == ("{}", 1, 30)
    assert rows["spans"][0]["trace_id"] == "tr1" and rows["spans"][0]["id"] == "s1"
    assert rows["events"][0]["timestamp"] == "2026-03-07T12:34:56.789000Z"
    assert (rows["spans"][0]["tenant_id"], rows["spans"][0]["project_id"]) == ("t1", "p1")
    assert rows["spans"][0]["trace_started_at"] == t["started_at"] and rows["spans"][0]["created_at"] == t["created_at"]


def test_span_types_and_event_levels_are_normalised():
    trace = full_trace(
        spans=[{"id": "a", "name": "n", "type": "default"}, {"id": "b", "name": "n"}],
        events=[{"id": "e", "message": "m", "level": "warning"}, {"id": "f", "message": "m"}],
    )
    rows = rows_of(envelope(trace))
    assert [s["type"] for s in rows["spans"]] == ["other", "other"]
    assert [e["level"] for e in rows["events"]] == ["warn", "info"]


def test_trace_level_tokens_win_over_span_sums():
    rows = rows_of(envelope(full_trace(prompt_tokens=100, spans=[{"id": "s", "name": "n", "prompt_tokens": 1}])))
    assert rows["traces"][0]["prompt_tokens"] == 100


def test_same_record_gives_same_rows():
    record = envelope(full_trace(spans=[{"id": "s", "name": "n"}]))
    assert orjson.dumps(rows_of(record)["traces"]) == orjson.dumps(rows_of(record)["traces"])


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"not json",
        b"{}",
        b'{"schema_version": 99, "tenant_id": "t", "project_id": "p", '
        b'"received_at": "2026-01-01T00:00:00Z", "request_id": "r", "payload": {"traces": []}}',
    ],
)
def test_unusable_records_raise(value):
    with pytest.raises(InvalidRecordError):
        rows_of(value)


@pytest.mark.parametrize(
    "payload",
    [
        {"traces": "nope"},
        {"traces": [1]},
        {"traces": [{"id": "x", "project_id": "p", "started_at": "t", "spans": [{}]}]},
    ],
    ids=["traces-not-list", "trace-not-object", "span-without-id"],
)
def test_malformed_payloads_raise(payload):
    record = orjson.dumps(
        {"schema_version": 1, "tenant_id": "t", "received_at": "2026-01-01T00:00:00Z", "payload": payload}
    )
    with pytest.raises(InvalidRecordError):
        rows_of(record)


def test_trace_without_gateway_fields_is_invalid():
    with pytest.raises(InvalidRecordError, match="not produced by the gateway"):
        rows_of(envelope(TRACE.validate_python({"name": "no id"})))


def test_project_retention_override_wins_over_the_default():
    record = envelope(
        full_trace(spans=[{"id": "s", "name": "n"}]),
        full_trace(id="tr2", project_id="p2"),
        retention_days={"p1": 365},
    )
    rows = rows_of(record, retention_days=30)
    assert [t["retention_days"] for t in rows["traces"]] == [365, 30]
    assert rows["spans"][0]["retention_days"] == 365


def test_a_batch_of_heavy_traces_is_bounded_by_its_rows() -> None:
    """Issue 15, finding 3: the trace writer counts traces, and a tenth of the rows when more,
    so 10,000 traces with 100 spans each no longer make one batch of a million rows."""
    from trulayer_common.clickhouse.table_sink import TableSink

    sink = TableSink(None, counted_table="traces", rows_per_unit=10)  # type: ignore[arg-type]
    ordinary = {"traces": [{}] * 100, "spans": [{}] * 100, "events": []}
    heavy = {"traces": [{}] * 100, "spans": [{}] * 5_000, "events": [{}] * 5_000}
    assert sink.size(ordinary) == 100
    assert sink.size(heavy) == 1_010


def test_quality_and_decision_transforms_refuse_values_json_text_cannot_hold():
    """A free-form field JSON text cannot hold makes the record invalid (dead-lettered), never
    a TypeError that would stop the writer's loop."""
    import json as stdlib_json

    from ingest_worker.decision_rows import decision_rows
    from ingest_worker.quality_rows import feedback_rows
    from trulayer_common.topics import InvalidRecordError, control_decisions

    big = 18446744073709551616
    feedback_record = {
        "schema_version": 1,
        "tenant_id": "t",
        "project_id": "p",
        "received_at": "2026-11-30T00:00:00Z",
        "request_id": "r",
        "payload": {
            "id": "f1",
            "trace_id": "tr",
            "label": "good",
            "metadata": {"n": big},
            "created_at": "2026-11-30T00:00:00Z",
        },
    }
    with pytest.raises(InvalidRecordError, match="metadata"):
        feedback_rows(stdlib_json.dumps(feedback_record).encode(), 30)
    decisions_record = {
        "schema_version": 1,
        "tenant_id": "t",
        "project_id": "p",
        "received_at": "2026-11-30T00:00:00Z",
        "request_id": "r",
        "payload": {
            "decisions": [
                {
                    "id": "d1",
                    "project_id": "p",
                    "decided_at": "2026-11-30T00:00:00Z",
                    "source": "sdk",
                    "decision": "allow",
                    "requested_model": "m",
                    "metadata": {"n": big},
                }
            ]
        },
    }
    with pytest.raises(InvalidRecordError, match="metadata"):
        decision_rows(control_decisions.decode(stdlib_json.dumps(decisions_record).encode()))
