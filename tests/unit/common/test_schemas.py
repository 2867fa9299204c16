from __future__ import annotations

import pytest
from pydantic import ValidationError

from trulayer_common.errors import ApiError
from trulayer_common.http import validation_error
from trulayer_common.schemas import BatchRequest, EventRequest, GuardLayerCall, SpanRequest, TraceRequest


def test_guardlayer_call_maps_onto_a_trace():
    call = GuardLayerCall(
        model="gpt-4",
        latency_ms=850,
        tokens_in=120,
        tokens_out=45,
        cost_usd=0.0042,
        status="error",
        guardrail_flags=["pii"],
    )
    trace = call.to_trace()
    assert (trace.model, trace.latency_ms, trace.prompt_tokens, trace.completion_tokens) == ("gpt-4", 850, 120, 45)
    assert trace.cost == 0.0042
    assert trace.error == "error"
    assert trace.metadata == {"status": "error", "guardrail_flags": ["pii"]}
    assert GuardLayerCall(model="m", latency_ms=1).to_trace().error is None


def test_trace_accepts_guardlayer_flat_fields_and_alternative_names():
    trace = TraceRequest.model_validate(
        {"model": "m", "tokens_in": 3, "cost_usd": 0.5, "status": "timeout", "start_time": "2026-01-01T00:00:00Z"}
    )
    assert trace.prompt_tokens == 3
    assert trace.cost == 0.5
    trace.fold_guardlayer_fields()
    assert trace.error == "timeout"
    assert trace.started_at is not None and trace.started_at.year == 2026
    ok = TraceRequest.model_validate({"status": "success", "guardrail_flags": ["pii"]})
    ok.fold_guardlayer_fields()
    assert ok.error is None
    assert ok.metadata == {"guardrail_flags": ["pii"]}
    assert "status" not in ok.model_dump()


def test_alternative_span_types_and_event_levels_are_accepted():
    assert SpanRequest.model_validate({"name": "x", "type": "default"}).type == "default"
    assert SpanRequest.model_validate({"name": "x", "span_type": "tool"}).type == "tool"
    assert EventRequest.model_validate({"message": "m", "level": "warning"}).level == "warning"
    with pytest.raises(ValidationError):
        SpanRequest.model_validate({"name": "x", "type": "database"})
    with pytest.raises(ValidationError):
        EventRequest.model_validate({"message": "m", "level": "loud"})


def test_unknown_fields_are_ignored():
    trace = TraceRequest.model_validate({"name": "n", "some_future_field": {"a": 1}})
    assert not hasattr(trace, "some_future_field")


@pytest.mark.parametrize(
    "tags",
    [["x"] * 21, {f"k{i}": "v" for i in range(21)}, ["x" * 65], {"k": "v" * 65}],
    ids=["list>20", "map>20", "long-item", "long-value"],
)
def test_tag_limits(tags):
    with pytest.raises(ValidationError):
        TraceRequest.model_validate({"tags": tags})


def test_batch_needs_exactly_one_shape():
    with pytest.raises(ValidationError, match="'traces' or a 'calls'"):
        BatchRequest.model_validate({})
    with pytest.raises(ValidationError, match="not both"):
        BatchRequest.model_validate({"traces": [], "calls": []})
    batch = BatchRequest.model_validate({"calls": [{"model": "m", "latency_ms": 1}]})
    assert batch.as_traces()[0].model == "m"


def _error_for(body: bytes) -> ApiError:
    with pytest.raises(ValidationError) as info:
        BatchRequest.model_validate_json(body)
    return validation_error(info.value)


def test_validation_errors_map_to_documented_statuses():
    too_many = _error_for(b'{"traces": [' + b",".join([b"{}"] * 101) + b"]}")
    assert (too_many.status, too_many.code, too_many.error) == (400, "batch_too_large", "Max 100 events per batch")
    missing = _error_for(b'{"calls": [{"model": "m"}]}')
    assert (missing.status, missing.code) == (422, "validation_error")
    assert "calls.0.latency_ms" in missing.error
    mismatch = _error_for(b'{"traces": [{"latency_ms": "slow"}]}')
    assert mismatch.status == 400
    assert mismatch.extra["details"][0]["field"] == "traces.0.latency_ms"
    broken = _error_for(b'{"traces": [')
    assert (broken.status, broken.code) == (400, "malformed_json")
