"""Ingest request shapes: TruLayer traces (with spans and events) and GuardLayer call records.

They are TypedDicts validated by pydantic-core straight from the request bytes: the result is
plain dicts and lists (no model instances), which the gateway completes and hands to orjson
for the Kafka record. On the hot path this is about three times cheaper than BaseModels.

Unknown fields are ignored (clients may be newer than us). Aliases accept the names that
TruLayer and GuardLayer clients send (``start_time``/``started_at``, ``cost_usd``, ...);
the validated dict holds the canonical name. Keys the client left out are absent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import AliasChoices, ConfigDict, Field, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from trulayer_common.errors import ApiError
from trulayer_common.schemas.bounds import MAX_EVENTS_PER_TRACE, MAX_SPANS_PER_TRACE, Cost, Latency, TokenCount

MAX_BATCH = 100
MAX_TAGS = 20
MAX_TAG_CHARS = 64
MAX_ID_CHARS = 256

Identifier = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]
ShortText = Annotated[str, Field(max_length=MAX_ID_CHARS)]
Name = Annotated[str, Field(max_length=1024)]
Metadata = dict[str, Any]
_Tag = Annotated[str, Field(max_length=MAX_TAG_CHARS)]
Tags = Annotated[
    Annotated[dict[_Tag, _Tag], Field(max_length=MAX_TAGS)] | Annotated[list[_Tag], Field(max_length=MAX_TAGS)],
    Field(union_mode="left_to_right"),
]


def _alias(*names: str) -> Any:
    return Field(validation_alias=AliasChoices(*names))


# Alternative spellings are accepted as they come and normalised by the ingest-worker's pure
# transform: a Python validator per item would cost more than the Rust validation of the trace.
SPAN_TYPES = {"llm": "llm", "tool": "tool", "retrieval": "retrieval", "other": "other", "default": "other"}
EVENT_LEVELS = {
    "info": "info",
    "debug": "info",
    "warn": "warn",
    "warning": "warn",
    "error": "error",
    "critical": "error",
    "fatal": "error",
}

# No global str_max_length: it doubles validation time, and the body size limit bounds strings.
# Numbers: finite (and bounded, see schemas.bounds); free-form JSON is checked separately.
_WIRE = ConfigDict(extra="ignore", allow_inf_nan=False)


@with_config(_WIRE)
class EventRequest(TypedDict):
    id: NotRequired[Identifier | None]
    span_id: NotRequired[Identifier | None]
    level: NotRequired[Literal["info", "debug", "warn", "warning", "error", "critical", "fatal"] | None]
    message: str
    metadata: NotRequired[Metadata | None]
    timestamp: NotRequired[datetime | None]


@with_config(_WIRE)
class SpanRequest(TypedDict):
    id: NotRequired[Identifier | None]
    parent_span_id: NotRequired[Identifier | None]
    name: Annotated[str, Field(min_length=1, max_length=1024)]
    type: NotRequired[
        Annotated[Literal["llm", "tool", "retrieval", "other", "default"] | None, _alias("type", "span_type")]
    ]
    input: NotRequired[Any]
    output: NotRequired[Any]
    model: NotRequired[str | None]
    latency_ms: NotRequired[Latency | None]
    cost: NotRequired[Cost | None]
    error: NotRequired[str | None]
    prompt_tokens: NotRequired[TokenCount | None]
    completion_tokens: NotRequired[TokenCount | None]
    metadata: NotRequired[Metadata | None]
    start_time: NotRequired[Annotated[datetime | None, _alias("start_time", "started_at")]]
    end_time: NotRequired[Annotated[datetime | None, _alias("end_time", "ended_at")]]


@with_config(_WIRE)
class TraceRequest(TypedDict):
    """One trace as TruLayer SDKs send it. GuardLayer's flat call fields are accepted too
    (``status``, ``guardrail_flags``): :func:`fold_guardlayer_fields` turns them into
    ``error``/``metadata``."""

    id: NotRequired[Identifier | None]
    project_id: NotRequired[ShortText | None]
    session_id: NotRequired[ShortText | None]
    external_id: NotRequired[ShortText | None]
    name: NotRequired[Name | None]
    input: NotRequired[Any]
    output: NotRequired[Any]
    model: NotRequired[str | None]
    latency_ms: NotRequired[Latency | None]
    cost: NotRequired[Annotated[Cost | None, _alias("cost", "cost_usd")]]
    error: NotRequired[str | None]
    prompt_tokens: NotRequired[Annotated[TokenCount | None, _alias("prompt_tokens", "tokens_in")]]
    completion_tokens: NotRequired[Annotated[TokenCount | None, _alias("completion_tokens", "tokens_out")]]
    tags: NotRequired[Tags | None]
    metadata: NotRequired[Metadata | None]
    started_at: NotRequired[Annotated[datetime | None, _alias("started_at", "start_time")]]
    ended_at: NotRequired[Annotated[datetime | None, _alias("ended_at", "end_time")]]
    spans: NotRequired[Annotated[list[SpanRequest], Field(max_length=MAX_SPANS_PER_TRACE)]]
    events: NotRequired[Annotated[list[EventRequest], Field(max_length=MAX_EVENTS_PER_TRACE)]]
    status: NotRequired[Annotated[str, Field(max_length=256)] | None]
    guardrail_flags: NotRequired[list[Any] | None]


@with_config(_WIRE)
class GuardLayerCall(TypedDict):
    """GuardLayer's flat call record: ``model`` and ``latency_ms`` are required."""

    id: NotRequired[Identifier | None]
    model: Annotated[str, Field(min_length=1, max_length=1024)]
    latency_ms: Latency
    tokens_in: NotRequired[TokenCount]
    tokens_out: NotRequired[TokenCount]
    cost_usd: NotRequired[Cost]
    status: NotRequired[Annotated[str, Field(max_length=256)]]
    guardrail_flags: NotRequired[list[Any]]
    project_id: NotRequired[ShortText | None]
    metadata: NotRequired[Metadata | None]


@with_config(_WIRE)
class BatchRequest(TypedDict):
    """``{"traces": [...]}`` (TruLayer) or ``{"calls": [...]}`` (GuardLayer), at most 100 items."""

    traces: NotRequired[Annotated[list[TraceRequest], Field(max_length=MAX_BATCH)] | None]
    calls: NotRequired[Annotated[list[GuardLayerCall], Field(max_length=MAX_BATCH)] | None]


TRACE = TypeAdapter(TraceRequest)
BATCH = TypeAdapter(BatchRequest)

BATCH_TOO_LARGE = ApiError(400, f"Max {MAX_BATCH} events per batch", "batch_too_large")


def batch_too_large(exc: ValidationError) -> bool:
    """Whether the batch failed because its ``traces``/``calls`` array has over 100 items."""
    return any(e["type"] == "too_long" and len(e["loc"]) == 1 for e in exc.errors(include_url=False))


def _shape_error(message: str) -> ApiError:
    return ApiError(
        400,
        f"Invalid field 'body': {message}",
        "validation_error",
        extra={"details": [{"field": "body", "message": message}]},
    )


def batch_items(batch: BatchRequest) -> list[TraceRequest]:
    """The batch's traces (GuardLayer calls mapped onto traces); exactly one shape is allowed."""
    traces, calls = batch.get("traces"), batch.get("calls")
    if traces is None and calls is None:
        raise _shape_error("body must have a 'traces' or a 'calls' array")
    if traces is not None and calls is not None:
        raise _shape_error("send either 'traces' or 'calls', not both")
    if traces is not None:
        return traces
    return [call_to_trace(call) for call in calls or []]


def call_to_trace(call: GuardLayerCall) -> TraceRequest:
    status = call.get("status", "success")
    metadata = dict(call.get("metadata") or {})
    metadata["status"] = status
    if flags := call.get("guardrail_flags"):
        metadata["guardrail_flags"] = flags
    return TraceRequest(
        id=call.get("id"),
        project_id=call.get("project_id"),
        name=call["model"],
        model=call["model"],
        latency_ms=call["latency_ms"],
        prompt_tokens=call.get("tokens_in", 0),
        completion_tokens=call.get("tokens_out", 0),
        cost=call.get("cost_usd", 0.0),
        error=None if status.lower() in ("success", "ok") else status,
        metadata=metadata,
    )


def fold_guardlayer_fields(trace: TraceRequest) -> None:
    """A non-success ``status`` becomes the error; ``guardrail_flags`` go to metadata; both
    keys leave the trace (they are not stored as such)."""
    status = trace.pop("status", None)
    if status is not None and trace.get("error") is None and status.lower() not in ("success", "ok"):
        trace["error"] = status
    if flags := trace.pop("guardrail_flags", None):
        trace["metadata"] = {**(trace.get("metadata") or {}), "guardrail_flags": flags}
