"""``trulayer.traces``: the traces of one ingest request, and the alerter's summary header.

One record carries the traces of one ingest request (≤100): the gateway has already resolved
every trace's project and filled every id, so the record is replayable byte for byte and its
rows are keyed identically on redelivery. Key: the first trace's id (spreads load; a trace is
never split over two records). Datetimes are RFC 3339 in UTC.

The hot path of the platform: the record is a TypedDict dumped by orjson (one C call), and
:func:`decode` checks its *shape* (the fields the gateway guarantees) instead of validating
every field again; the values were validated at the edge. What it returns is the parsed
record itself, plain dicts that the ingest-worker completes into rows in place.

Beside each record the gateway sends :data:`POINTS_HEADER`, a summary of the record for the
alerter (:func:`encode_points` / :func:`decode_points`), so the alerter never parses the
record itself; :func:`points_of` gives the same summary from a decoded record.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NotRequired, Required, cast

import orjson
from pydantic import ConfigDict, WithJsonSchema, with_config
from typing_extensions import TypedDict

from trulayer_common.schemas.ingest import TraceRequest
from trulayer_common.topics import TRACES
from trulayer_common.topics.envelope import InvalidRecordError, Timestamp

TOPIC = TRACES
SCHEMA_VERSION = 1
# "2026-03-07T12:34:56.789000Z"; a datetime sent without an offset is taken as UTC.
_DATETIMES = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC
_RECORD = ConfigDict(extra="allow")  # readers keep fields added later within the version


# The record as it is on the wire (JSON view of ``TraceRequest`` once the gateway completed it:
# ids and project filled, GuardLayer's ``status``/``guardrail_flags`` folded away). A unit test
# keeps these field lists equal to the request shapes'.
@with_config(_RECORD)
class SpanRecord(TypedDict, total=False):
    id: Required[str]
    parent_span_id: str | None
    name: str
    type: Literal["llm", "tool", "retrieval", "other", "default"] | None
    input: Any
    output: Any
    model: str | None
    latency_ms: float | None
    cost: float | None
    error: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    metadata: dict[str, Any] | None
    start_time: Timestamp | None
    end_time: Timestamp | None


@with_config(_RECORD)
class EventRecord(TypedDict, total=False):
    id: Required[str]
    span_id: str | None
    level: Literal["info", "debug", "warn", "warning", "error", "critical", "fatal"] | None
    message: str
    metadata: dict[str, Any] | None
    timestamp: Timestamp | None


@with_config(_RECORD)
class OtlpPart(TypedDict):
    """Marks a trace that is one OTLP export's part of an OpenTelemetry trace (added within
    version 1; absent on every other trace). The worker stores the part's spans and events and
    derives the trace row from all the spans stored for the trace (``docs/otlp.md``); the part's
    own trace fields describe the part only. ``root``: the part holds the trace's root span."""

    root: bool


@with_config(_RECORD)
class TraceRecord(TypedDict, total=False):
    id: Required[str]
    project_id: Required[str]
    started_at: Required[Timestamp]
    session_id: str | None
    external_id: str | None
    name: str | None
    input: Any
    output: Any
    model: str | None
    latency_ms: float | None
    cost: float | None
    error: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    tags: dict[str, str] | list[str] | None
    metadata: dict[str, Any] | None
    ended_at: Timestamp | None
    spans: list[SpanRecord]
    events: list[EventRecord]
    otlp: OtlpPart


@with_config(_RECORD)
class TraceBatch(TypedDict):
    kind: Literal["traces"]
    traces: list[TraceRecord]


@with_config(_RECORD)
class TraceEnvelope(TypedDict):
    schema_version: int
    tenant_id: str
    project_id: str
    received_at: Timestamp
    request_id: str
    payload: TraceBatch
    # Projects of this record with a retention override (days); others get the worker's default.
    retention_days: NotRequired[dict[str, int]]


def key(traces: list[TraceRequest]) -> bytes:
    """The record key: the first trace's id."""
    return str(traces[0].get("id")).encode()


def encode(
    *,
    tenant_id: str,
    project_id: str,
    received_at: datetime,
    request_id: str,
    traces: list[TraceRequest],
    retention_days: dict[str, int] | None = None,
) -> bytes:
    """The record value for completed traces (ids, ``project_id`` and ``started_at`` set)."""
    envelope = {
        "schema_version": SCHEMA_VERSION,
        "tenant_id": tenant_id,
        "project_id": project_id,
        "received_at": received_at,
        "request_id": request_id,
        "payload": {"kind": "traces", "traces": traces},
        "retention_days": retention_days or {},
    }
    return orjson.dumps(envelope, option=_DATETIMES)


def _text(obj: dict[str, Any], field: str, where: str) -> None:
    value = obj.get(field)
    if not isinstance(value, str) or not value:
        raise InvalidRecordError(f"{where} without {field}: not produced by the gateway")


def _has_ids(items: Any) -> bool:
    """Whether ``items`` is a list of objects with an id (the common case, checked inline)."""
    if type(items) is not list:
        return False
    for item in items:
        if type(item) is not dict:
            return False
        item_id = item.get("id")
        if type(item_id) is not str or not item_id:
            return False
    return True


def _trace_problem(trace: Any) -> InvalidRecordError:
    """The reason a trace failed the inline check (the slow path: only for bad records)."""
    if not isinstance(trace, dict):
        return InvalidRecordError("malformed trace: not an object")
    try:
        for field in ("id", "project_id", "started_at"):
            _text(trace, field, "trace")
        for field, what in (("spans", "span"), ("events", "event")):
            items = trace.get(field)
            if items is None:
                continue
            if not isinstance(items, list):
                return InvalidRecordError(f"malformed trace {trace['id']}: {field} is not an array")
            for item in items:
                if not isinstance(item, dict):
                    return InvalidRecordError(f"malformed trace {trace['id']}: an item of {field} is not an object")
                _text(item, "id", f"{what} of trace {trace['id']}")
    except InvalidRecordError as exc:
        return exc
    return InvalidRecordError("malformed trace")


def decode(value: bytes | None) -> TraceEnvelope:
    """The parsed record, its shape checked: envelope fields, and every trace (span, event) an
    object with the ids the gateway fills. Raises :class:`InvalidRecordError` otherwise.
    Values are not validated again (the gateway did); ``retention_days`` is always present."""
    if value is None:
        raise InvalidRecordError("empty record")
    try:
        envelope = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise InvalidRecordError(f"not JSON: {exc}") from None
    if not isinstance(envelope, dict):
        raise InvalidRecordError("not a trace envelope: not an object")
    version = envelope.get("schema_version")
    if type(version) is not int or not 1 <= version <= SCHEMA_VERSION:
        raise InvalidRecordError(
            f"not a trace envelope: schema_version {version!r} (this reader reads ≤ {SCHEMA_VERSION})"
        )
    payload = envelope.get("payload")
    traces = payload.get("traces") if isinstance(payload, dict) else None
    if not isinstance(traces, list):
        raise InvalidRecordError("not a trace envelope: no payload.traces array")
    _text(envelope, "tenant_id", "envelope")
    _text(envelope, "received_at", "envelope")
    retention = envelope.setdefault("retention_days", {})
    if not isinstance(retention, dict):
        raise InvalidRecordError("not a trace envelope: retention_days is not an object")
    # The hot path: inline type checks, no call per trace; a failure is explained by the slow path.
    for trace in traces:
        if (
            type(trace) is not dict
            or type(trace.get("id")) is not str
            or not trace["id"]
            or type(trace.get("project_id")) is not str
            or not trace["project_id"]
            or type(trace.get("started_at")) is not str
            or not trace["started_at"]
        ):
            raise _trace_problem(trace)
        spans = trace.get("spans")
        events = trace.get("events")
        if (spans is not None and not _has_ids(spans)) or (events is not None and not _has_ids(events)):
            raise _trace_problem(trace)
    return cast(TraceEnvelope, envelope)  # its shape is checked above


# -- the alerter's summary header ---------------------------------------------------------------

POINTS_HEADER = "trulayer-points"
# One point per trace: [event_ts (epoch s: started_at capped at received_at), model ("" when
# none), latency_ms | null, is_error 0/1, cost | null].
Point = Annotated[
    list[Any],
    WithJsonSchema(
        {
            "type": "array",
            "prefixItems": [
                {"type": "number", "description": "event time, epoch seconds"},
                {"type": "string", "description": "model, empty when none"},
                {"type": ["number", "null"], "description": "latency_ms"},
                {"type": "integer", "enum": [0, 1], "description": "1 when the trace has an error"},
                {"type": ["number", "null"], "description": "cost"},
            ],
            "minItems": 5,
            "maxItems": 5,
        }
    ),
]


class Points(TypedDict):
    """The value of :data:`POINTS_HEADER`: ``{"tenant_id", "groups": {project_id: [point, ...]}}``."""

    tenant_id: str
    groups: dict[str, list[Point]]


def _epoch(value: datetime) -> float:
    return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).timestamp()


def counted(trace: Mapping[str, Any]) -> bool:
    """Whether a trace counts in the alerter's windows: every trace, except the OTLP parts that
    do not hold their trace's root span (a trace counts once, with the part holding its root)."""
    part = trace.get("otlp")
    return part is None or bool(part.get("root"))


def encode_points(tenant_id: str, received_at: datetime, traces: list[TraceRequest]) -> bytes:
    """The :data:`POINTS_HEADER` value for completed traces (project and started_at set);
    only :func:`counted` traces have a point."""
    received = _epoch(received_at)
    groups: dict[str, list[list[Any]]] = {}
    for trace in traces:
        if not counted(trace):
            continue
        started = trace.get("started_at")
        event_ts = received if started is None else min(_epoch(started), received)
        is_error = 1 if trace.get("error") else 0
        point = [event_ts, trace.get("model") or "", trace.get("latency_ms"), is_error, trace.get("cost")]
        groups.setdefault(trace.get("project_id") or "", []).append(point)
    return orjson.dumps({"tenant_id": tenant_id, "groups": groups})


def _number(value: Any) -> bool:
    return type(value) is float or (type(value) is int)


def _point_ok(point: Any) -> bool:
    return (
        type(point) is list
        and len(point) == 5
        and _number(point[0])
        and type(point[1]) is str
        and (point[2] is None or _number(point[2]))
        and point[3] in (0, 1)
        and (point[4] is None or _number(point[4]))
    )


def decode_points(header: bytes) -> Points:
    """The parsed header, every point checked; :class:`InvalidRecordError` otherwise."""
    try:
        data = orjson.loads(header)
    except orjson.JSONDecodeError as exc:
        raise InvalidRecordError(f"points header not JSON: {exc}") from None
    groups = data.get("groups") if isinstance(data, dict) else None
    if not isinstance(groups, dict) or not isinstance(data.get("tenant_id"), str):
        raise InvalidRecordError("not a points header: needs tenant_id and a groups object")
    for project_id, points in groups.items():
        if not isinstance(points, list) or not all(_point_ok(p) for p in points):
            raise InvalidRecordError(f"not a points header: malformed points of project {project_id!r}")
    return cast(Points, data)  # its shape is checked above


def _epoch_text(value: str) -> float | None:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return _epoch(parsed)


def _finite(value: Any) -> float | None:
    if _number(value) and math.isfinite(value):
        return float(value)
    return None


def points_of(envelope: TraceEnvelope) -> Points:
    """The :data:`POINTS_HEADER` summary of a decoded record (for records sent without it)."""
    received = _epoch_text(envelope["received_at"])
    if received is None:
        raise InvalidRecordError(f"not a trace envelope: received_at {envelope['received_at']!r} is not a time")
    groups: dict[str, list[Point]] = {}
    for trace in envelope["payload"]["traces"]:
        if not counted(trace):
            continue
        started = _epoch_text(trace["started_at"])
        event_ts = received if started is None else min(started, received)
        model = trace.get("model")
        point = [
            event_ts,
            model if isinstance(model, str) else "",
            _finite(trace.get("latency_ms")),
            1 if trace.get("error") else 0,
            _finite(trace.get("cost")),
        ]
        groups.setdefault(trace["project_id"], []).append(point)
    return Points(tenant_id=envelope["tenant_id"], groups=groups)
