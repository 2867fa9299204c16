from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from pydantic import TypeAdapter, ValidationError

from trulayer_common.errors import ApiError
from trulayer_common.http import validation_error
from trulayer_common.schemas import (
    BATCH,
    BATCH_TOO_LARGE,
    TRACE,
    EventRequest,
    GuardLayerCall,
    SpanRequest,
    batch_items,
    batch_too_large,
    call_to_trace,
    fold_guardlayer_fields,
)
from trulayer_common.topics import traces

SPAN = TypeAdapter(SpanRequest)
EVENT = TypeAdapter(EventRequest)
CALL = TypeAdapter(GuardLayerCall)


def test_guardlayer_call_maps_onto_a_trace():
    call = CALL.validate_python(
        {
            "model": "gpt-4",
            "latency_ms": 850,
            "tokens_in": 120,
            "tokens_out": 45,
            "cost_usd": 0.0042,
            "status": "error",
            "guardrail_flags": ["pii"],
        }
    )
    trace = call_to_trace(call)
    assert (trace["model"], trace["latency_ms"], trace["prompt_tokens"], trace["completion_tokens"]) == (
        "gpt-4",
        850,
        120,
        45,
    )
    assert trace["cost"] == 0.0042
    assert trace["error"] == "error"
    assert trace["metadata"] == {"status": "error", "guardrail_flags": ["pii"]}
    assert call_to_trace(CALL.validate_python({"model": "m", "latency_ms": 1}))["error"] is None


def test_trace_accepts_guardlayer_flat_fields_and_alternative_names():
    trace = TRACE.validate_python(
        {"model": "m", "tokens_in": 3, "cost_usd": 0.5, "status": "timeout", "start_time": "2026-01-01T00:00:00Z"}
    )
    assert trace["prompt_tokens"] == 3
    assert trace["cost"] == 0.5
    fold_guardlayer_fields(trace)
    assert trace["error"] == "timeout"
    assert trace["started_at"] == datetime(2026, 1, 1, tzinfo=UTC)
    ok = TRACE.validate_python({"status": "success", "guardrail_flags": ["pii"]})
    fold_guardlayer_fields(ok)
    assert ok.get("error") is None
    assert ok["metadata"] == {"guardrail_flags": ["pii"]}
    assert "status" not in ok and "guardrail_flags" not in ok


def test_alternative_span_types_and_event_levels_are_accepted():
    assert SPAN.validate_python({"name": "x", "type": "default"})["type"] == "default"
    assert SPAN.validate_python({"name": "x", "span_type": "tool"})["type"] == "tool"
    assert EVENT.validate_python({"message": "m", "level": "warning"})["level"] == "warning"
    with pytest.raises(ValidationError):
        SPAN.validate_python({"name": "x", "type": "database"})
    with pytest.raises(ValidationError):
        EVENT.validate_python({"message": "m", "level": "loud"})


def test_unknown_fields_are_ignored_and_absent_ones_stay_absent():
    trace = TRACE.validate_json(b'{"name": "n", "some_future_field": {"a": 1}, "model": null}')
    assert trace == {"name": "n", "model": None}


@pytest.mark.parametrize(
    "tags",
    [["x"] * 21, {f"k{i}": "v" for i in range(21)}, ["x" * 65], {"k": "v" * 65}],
    ids=["list>20", "map>20", "long-item", "long-value"],
)
def test_tag_limits(tags):
    with pytest.raises(ValidationError):
        TRACE.validate_python({"tags": tags})


def test_tags_at_the_limits_are_accepted():
    assert len(TRACE.validate_python({"tags": ["x" * 64] * 20})["tags"]) == 20
    assert len(TRACE.validate_python({"tags": {f"k{i}": "v" * 64 for i in range(20)}})["tags"]) == 20


def test_batch_needs_exactly_one_shape():
    with pytest.raises(ApiError, match="'traces' or a 'calls'") as neither:
        batch_items(BATCH.validate_python({}))
    assert (neither.value.status, neither.value.code) == (400, "validation_error")
    with pytest.raises(ApiError, match="not both"):
        batch_items(BATCH.validate_python({"traces": [], "calls": []}))
    (trace,) = batch_items(BATCH.validate_python({"calls": [{"model": "m", "latency_ms": 1}]}))
    assert trace["model"] == "m"


def _error_for(body: bytes) -> ApiError:
    with pytest.raises(ValidationError) as info:
        BATCH.validate_json(body)
    return BATCH_TOO_LARGE if batch_too_large(info.value) else validation_error(info.value)


def test_validation_errors_map_to_documented_statuses():
    too_many = _error_for(b'{"traces": [' + b",".join([b"{}"] * 101) + b"]}")
    assert (too_many.status, too_many.code, too_many.error) == (400, "batch_too_large", "Max 100 events per batch")
    too_many_calls = _error_for(b'{"calls": [' + b",".join([b'{"model": "m", "latency_ms": 1}'] * 101) + b"]}")
    assert too_many_calls.code == "batch_too_large"
    missing = _error_for(b'{"calls": [{"model": "m"}]}')
    assert (missing.status, missing.code) == (422, "validation_error")
    assert "calls.0.latency_ms" in missing.error
    mismatch = _error_for(b'{"traces": [{"latency_ms": "slow"}]}')
    assert mismatch.status == 400
    assert mismatch.extra["details"][0]["field"] == "traces.0.latency_ms"
    broken = _error_for(b'{"traces": [')
    assert (broken.status, broken.code) == (400, "malformed_json")


def test_envelope_datetimes_are_utc_with_z():
    naive = TRACE.validate_python({"id": "a", "started_at": "2026-01-01T10:00:00"})
    offset = TRACE.validate_python({"id": "b", "started_at": "2026-01-01T12:00:00+02:00"})
    record = orjson.loads(
        traces.encode(
            tenant_id="t",
            project_id="p",
            received_at=datetime(2026, 1, 1, 11, tzinfo=UTC),
            request_id="r",
            traces=[naive, offset],
        )
    )
    assert record["received_at"] == "2026-01-01T11:00:00Z"
    assert record["payload"]["traces"][0]["started_at"] == "2026-01-01T10:00:00Z"
    # An offset is kept as sent (the instant is the same; readers parse it).
    assert record["payload"]["traces"][1]["started_at"] == "2026-01-01T12:00:00+02:00"
    assert record["schema_version"] == 1 and record["retention_days"] == {}
