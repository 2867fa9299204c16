"""The topic modules: every encode/decode pair round-trips, refuses what it cannot read with
``InvalidRecordError``, reads the previous version of its records, and matches its published
JSON Schema (which must not be stale)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import pytest

from trulayer_common.config.entities import ApiKey, ConfigRecord
from trulayer_common.schemas import TRACE, EventRequest, SpanRequest, TraceRequest
from trulayer_common.topics import (
    InvalidRecordError,
    alerts,
    catalog,
    config,
    control_decisions,
    dlq,
    eval_requests,
    eval_results,
    feedback,
    signals,
    traces,
)

REPO = Path(__file__).resolve().parents[3]
AT = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)


def _trace_value() -> bytes:
    trace = TRACE.validate_python(
        {
            "id": "tr1",
            "project_id": "p1",
            "started_at": "2026-03-07T11:59:00Z",
            "model": "m",
            "latency_ms": 12,
            "spans": [{"id": "s1", "name": "llm", "type": "llm"}],
            "events": [{"id": "e1", "message": "hi"}],
        }
    )
    return traces.encode(
        tenant_id="t", project_id="p1", received_at=AT, request_id="r", traces=[trace], retention_days={"p1": 9}
    )


ALERT_EVENT = alerts.AlertEvent(
    kind="alert_event",
    id="a1",
    tenant_id="t",
    project_id="p",
    rule_id="r",
    rule_name="n",
    metric="error_rate",
    metric_name="",
    operator="gt",
    threshold_value=5.0,
    metric_value=7.5,
    window_secs=300,
    severity="high",
    model="",
    triggered_at="2026-03-07T12:00:00.000Z",
    notification_sent=False,
    version=1,
    created_at="2026-03-07T12:00:00.001Z",
)
DELIVERY = alerts.WebhookDelivery(
    kind="webhook_delivery",
    tenant_id="t",
    webhook_id="w",
    alert_event_id="a1",
    id="d1",
    url="https://example.com/hook",
    attempt=1,
    status_code=200,
    outcome="delivered",
    error="",
    duration_ms=3.5,
    attempted_at="2026-03-07T12:00:01.000Z",
)
ANOMALY = alerts.Anomaly(
    kind="anomaly",
    id="an1",
    tenant_id="t",
    project_id="p",
    type="latency_spike",
    metric="latency_p95",
    severity="critical",
    observed_value=900.0,
    baseline_mean=100.0,
    baseline_std=10.0,
    z_score=80.0,
    window_start="2026-03-07T12:00:00.000Z",
    window_end="2026-03-07T12:01:00.000Z",
    detected_at="2026-03-07T12:01:00.500Z",
)
FEEDBACK = feedback.Feedback(id="f1", trace_id="tr1", label="good", score=1.0, comment="ok", created_at=AT)
EVAL_REQUEST = eval_requests.EvalRequest(
    eval_id="ev1", trace_id="tr1", metric_name="relevance", evaluator_type="llm", config={"model": "gpt"}, attempt=2
)
EVALUATION = eval_results.Evaluation(
    id="ev1",
    trace_id="tr1",
    project_id="p1",
    metric_name="relevance",
    evaluator_type="llm",
    status="complete",
    score=0.8,
    label="pass",
    reasoning="fine",
    attempts=1,
    judge=eval_results.Judge(model="gpt", input_tokens=10, output_tokens=2, cost=0.001),
    created_at=AT,
    completed_at=AT,
    model="gpt-4o",
)
DECISION = control_decisions.ControlDecision(
    id="d1",
    decided_at=AT,
    source="server",
    project_id="p1",
    requested_model="gpt-4o",
    target_model="gpt-4o-mini",
    decision="route",
    rule_id="route-1",
    reason="latency",
    dry_run=False,
    config_type="model_route",
    status="success",
    metadata={"a": 1},
)
SIGNAL = signals.WindowSignal(
    tenant_id="t",
    project_id="p1",
    model="gpt-4o",
    window_secs=300,
    as_of=AT,
    count=10,
    error_rate=0.1,
    latency_p50=100,
    latency_p95=200,
    latency_p99=300,
    cost_per_call=0.01,
    total_cost=0.1,
    eval_scores={"relevance": 0.9},
)
API_KEY = ApiKey(id="k1", tenant_id="t", project_id="p1", name="k", prefix="tl_ab", key_hash="h", created_at=AT)


def samples() -> dict[str, Any]:
    """One encoded sample per published schema file (dlq: its headers as text)."""
    headers = dlq.encode_headers(dlq.DeadLetter("boom", "trulayer.traces", 3, 42))
    return {
        "traces.json": _trace_value(),
        "traces.points-header.json": traces.encode_points("t", AT, [TRACE.validate_python({"project_id": "p"})]),
        "feedback.json": feedback.encode(FEEDBACK, tenant_id="t", project_id="p1", request_id="r"),
        "eval.requests.json": eval_requests.encode(EVAL_REQUEST, tenant_id="t", project_id="p1", request_id="r"),
        "eval.results.json": eval_results.encode([EVALUATION], tenant_id="t"),
        "alerts.json": alerts.encode(ALERT_EVENT),
        "control.decisions.json": control_decisions.encode([DECISION], tenant_id="t", project_id="p1", request_id="r"),
        "config.json": config.encode(ConfigRecord(entity=API_KEY, at=AT)),
        "dlq.headers.json": orjson.dumps({name: value.decode() for name, value in headers}),
        "signals.json": signals.encode(SIGNAL),
    }


def test_checked_in_schemas_are_current() -> None:
    """Fails when a record type changed and ``make topic-schemas`` was not run."""
    directory = REPO / "docs" / "topics"
    expected = catalog.rendered()
    assert sorted(p.name for p in directory.glob("*.json")) == sorted(expected)
    for name, content in expected.items():
        assert (directory / name).read_bytes() == content, f"docs/topics/{name} is stale: run make topic-schemas"


@pytest.mark.parametrize("schema", catalog.SCHEMAS, ids=lambda s: s.file)
def test_encoded_records_are_valid_against_their_published_schema(schema: catalog.RecordSchema) -> None:
    published = orjson.loads((REPO / "docs" / "topics" / schema.file).read_bytes())
    jsonschema_rs.meta.validate(published)
    jsonschema_rs.Draft202012Validator(published).validate(orjson.loads(samples()[schema.file]))


def test_every_sample_decodes_to_what_was_encoded() -> None:
    decoded = traces.decode(samples()["traces.json"])
    assert decoded["tenant_id"] == "t" and decoded["retention_days"] == {"p1": 9}
    (trace,) = decoded["payload"]["traces"]
    assert (trace["id"], trace["started_at"], trace["spans"][0]["id"]) == ("tr1", "2026-03-07T11:59:00Z", "s1")
    assert traces.decode_points(samples()["traces.points-header.json"])["groups"]["p"][0][0] == AT.timestamp()
    assert feedback.decode(samples()["feedback.json"]).payload == FEEDBACK
    assert eval_requests.decode(samples()["eval.requests.json"]).payload == EVAL_REQUEST
    got = eval_results.decode(samples()["eval.results.json"])
    assert (got.payload.evaluations, got.project_id, got.schema_version) == ([EVALUATION], "p1", 2)
    for record in (ALERT_EVENT, DELIVERY, ANOMALY):
        envelope = alerts.decode(alerts.encode(record, AT))
        assert (envelope.schema_version, envelope.payload, envelope.received_at) == (2, record, AT)
    assert alerts.decode(alerts.encode(DELIVERY)).project_id == ""  # a delivery belongs to no project
    (decision,) = control_decisions.decode(samples()["control.decisions.json"]).payload["decisions"]
    assert decision == DECISION
    assert signals.decode(samples()["signals.json"]).payload == SIGNAL
    assert signals.key(SIGNAL) == b"t|p1|gpt-4o"
    record = config.decode(samples()["config.json"])
    assert (record.entity, record.schema_version, config.key(record)) == (API_KEY, 1, b"api_key:k1")
    headers = dlq.encode_headers(dlq.DeadLetter("boom", "trulayer.traces", 3, 42))
    assert dlq.decode_headers(headers) == dlq.DeadLetter("boom", "trulayer.traces", 3, 42)


def test_the_previous_version_of_each_record_still_decodes() -> None:
    # trulayer.traces v1, as the gateway wrote it before the topic modules (unchanged since).
    v1_traces = (
        b'{"schema_version":1,"tenant_id":"t","project_id":"p","received_at":"2026-11-22T10:00:00.123456Z",'
        b'"request_id":"r","payload":{"kind":"traces","traces":[{"id":"a","project_id":"p",'
        b'"started_at":"2026-11-22T10:00:00Z","metadata":{"k":1}}]},"retention_days":{}}'
    )
    assert traces.decode(v1_traces)["payload"]["traces"][0]["metadata"] == {"k": 1}
    # trulayer.alerts v1: the bare record with its kind, before the envelope.
    v1_alert = orjson.dumps(ALERT_EVENT)
    envelope = alerts.decode(v1_alert)
    assert (envelope.schema_version, envelope.payload, envelope.tenant_id) == (1, ALERT_EVENT, "t")
    assert envelope.received_at == datetime(2026, 3, 7, 12, 0, tzinfo=UTC)  # its triggered_at
    assert alerts.decode(orjson.dumps(DELIVERY)).payload == DELIVERY
    assert alerts.decode(orjson.dumps(ANOMALY)).payload == ANOMALY
    # trulayer.eval.results v1: one evaluation as the payload; read as a batch of one.
    v1_evaluation = (
        b'{"schema_version":1,"tenant_id":"t","project_id":"p1","received_at":"2026-03-07T12:00:00Z",'
        b'"request_id":"","payload":{"id":"ev1","trace_id":"tr1","project_id":"p1","metric_name":"m",'
        b'"evaluator_type":"rule","status":"complete","score":0.5,"label":"warn","reasoning":null,"attempts":1,'
        b'"judge":null,"created_at":"2026-03-07T12:00:00Z","completed_at":null,"model":"gpt-4o"}}'
    )
    old = eval_results.decode(v1_evaluation)
    (evaluation,) = old.payload.evaluations
    assert (old.schema_version, evaluation.score, evaluation.version, evaluation.rule_id) == (1, 0.5, 0, None)
    # trulayer.config before schema_version existed.
    v1_config = (
        b'{"entity":{"kind":"project","id":"p1","tenant_id":"t","name":"default","archived":false,'
        b'"retention_days_override":null,"created_at":"2026-01-01T00:00:00Z"},"actor":"system","at":"2026-01-01T00:00:00Z"}'
    )
    assert config.decode(v1_config).schema_version == 1
    # trulayer.dlq headers as the ingest-worker wrote them before.
    old_headers = [
        ("error", b"not JSON"),
        ("source_topic", b"trulayer.traces"),
        ("source_partition", b"0"),
        ("source_offset", b"7"),
    ]
    assert dlq.decode_headers(old_headers).source_offset == 7


def test_fields_added_within_a_version_are_ignored_by_readers() -> None:
    value = orjson.loads(samples()["feedback.json"])
    value["new_top_level"] = 1
    value["payload"]["new_field"] = "x"
    assert feedback.decode(orjson.dumps(value)).payload == FEEDBACK
    alert = orjson.loads(alerts.encode(ALERT_EVENT))
    alert["payload"]["added_later"] = True
    assert alerts.decode(orjson.dumps(alert)).payload == ALERT_EVENT


def _newer(value: bytes) -> bytes:
    data = orjson.loads(value)
    data["schema_version"] = 99
    return orjson.dumps(data)


DECODERS: dict[str, Any] = {
    "traces.json": traces.decode,
    "feedback.json": feedback.decode,
    "eval.requests.json": eval_requests.decode,
    "eval.results.json": eval_results.decode,
    "alerts.json": alerts.decode,
    "control.decisions.json": control_decisions.decode,
    "config.json": config.decode,
    "signals.json": signals.decode,
}


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_decoders_refuse_what_they_cannot_read(name: str) -> None:
    decode = DECODERS[name]
    for bad in (b"not json", b"[1]", b"{}", _newer(samples()[name])):
        with pytest.raises(InvalidRecordError) as info:
            decode(bad)
        assert str(info.value)  # a reason, for the dead letter
    assert issubclass(InvalidRecordError, ValueError)


def test_the_newer_version_is_named_in_the_reason() -> None:
    with pytest.raises(InvalidRecordError, match="schema_version 99"):
        feedback.decode(_newer(samples()["feedback.json"]))
    with pytest.raises(InvalidRecordError, match="newer"):
        alerts.decode(_newer(samples()["alerts.json"]))


def test_invalid_values_are_refused_with_the_field_named() -> None:
    value = orjson.loads(samples()["eval.results.json"])
    value["payload"]["evaluations"][0]["score"] = 1.5
    with pytest.raises(InvalidRecordError, match=r"payload\.evaluations\.0\.score"):
        eval_results.decode(orjson.dumps(value))
    decision = orjson.loads(samples()["control.decisions.json"])
    decision["payload"]["decisions"][0]["decision"] = "maybe"
    with pytest.raises(InvalidRecordError, match="decision"):
        control_decisions.decode(orjson.dumps(decision))
    bare = {**ALERT_EVENT, "kind": "something_else"}
    with pytest.raises(InvalidRecordError):
        alerts.decode(orjson.dumps(bare))
    with pytest.raises(InvalidRecordError, match="source_offset"):
        dlq.decode_headers([("error", b"x"), ("source_topic", b"t"), ("source_partition", b"0")])
    with pytest.raises(InvalidRecordError):
        config.decode_key(b"no-kind")


@pytest.mark.parametrize(
    "header",
    [b"nope", b"[]", b'{"groups": {}}', b'{"tenant_id": "t", "groups": {"p": [[1, "m", null, 2, null]]}}'],
    ids=["not-json", "not-object", "no-tenant", "is-error-not-0-or-1"],
)
def test_points_header_is_checked(header: bytes) -> None:
    with pytest.raises(InvalidRecordError):
        traces.decode_points(header)


def test_points_of_a_record_equal_its_header() -> None:
    sent = [
        TRACE.validate_python(t)
        for t in (
            {"id": "a", "project_id": "p1", "started_at": "2026-03-07T11:00:00Z", "model": "m", "latency_ms": 5},
            {"id": "b", "project_id": "p1", "started_at": "2026-03-07T13:00:00Z", "error": "x", "cost": 0.5},
            {"id": "c", "project_id": "p2", "started_at": "2026-03-07T11:30:00"},  # no offset: UTC
        )
    ]
    value = traces.encode(tenant_id="t", project_id="p1", received_at=AT, request_id="r", traces=sent)
    assert traces.points_of(traces.decode(value)) == traces.decode_points(traces.encode_points("t", AT, sent))


def _keys(typed: Any) -> set[str]:
    return set(typed.__annotations__)


def test_trace_record_fields_follow_the_request_shapes() -> None:
    """The record is the request completed by the gateway: same fields, minus GuardLayer's
    folded ``status``/``guardrail_flags``, plus the marker of OTLP parts (which only the
    gateway's OTLP path sets). Adding a request field means adding it here."""
    assert _keys(traces.TraceRecord) == (_keys(TraceRequest) - {"status", "guardrail_flags"}) | {"otlp"}
    assert _keys(traces.SpanRecord) == _keys(SpanRequest)
    assert _keys(traces.EventRecord) == _keys(EventRequest)


@pytest.mark.parametrize(
    "module",
    ["trulayer_common.topics.config", "trulayer_common.clickhouse.migrations", "trulayer_common.clickhouse.client"],
)
def test_modules_import_on_their_own(module: str) -> None:
    """No import cycle hides behind an import order (a fresh interpreter, this module first)."""
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True, timeout=60)
