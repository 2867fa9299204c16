"""The Kafka record envelope: ``{schema_version, tenant_id, project_id, received_at, request_id, payload}``.

One ``trulayer.traces`` record carries the traces of one ingest request (≤100): the gateway
has already resolved every trace's project and filled every id, so the record is replayable
byte for byte and its rows are keyed identically on redelivery. Datetimes are RFC 3339 in
UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from typing_extensions import TypedDict

from trulayer_common.schemas.ingest import TraceRequest

SCHEMA_VERSION = 1
# "2026-03-07T12:34:56.789000Z"; a datetime sent without an offset is taken as UTC.
_DATETIMES = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


class TraceBatchPayload(TypedDict):
    kind: Literal["traces"]
    traces: list[TraceRequest]


class Envelope(TypedDict):
    schema_version: int
    tenant_id: str
    project_id: str
    received_at: datetime
    request_id: str
    payload: TraceBatchPayload
    # Projects of this record with a retention override (days); others get the worker's default.
    retention_days: dict[str, int]


def trace_envelope(
    *,
    tenant_id: str,
    project_id: str,
    received_at: datetime,
    request_id: str,
    traces: list[TraceRequest],
    retention_days: dict[str, int] | None = None,
) -> bytes:
    """The record value for completed traces (orjson: one C call, datetimes as RFC 3339)."""
    envelope = Envelope(
        schema_version=SCHEMA_VERSION,
        tenant_id=tenant_id,
        project_id=project_id,
        received_at=received_at,
        request_id=request_id,
        payload=TraceBatchPayload(kind="traces", traces=traces),
        retention_days=retention_days or {},
    )
    return orjson.dumps(envelope, option=_DATETIMES)


# The alerter's summary of a ``trulayer.traces`` record, sent as a Kafka header beside it so
# that the alerter never parses the record itself (the bulk of its work otherwise):
# ``{"tenant_id", "groups": {project_id: [[event_ts, model, latency_ms|null, is_error, cost|null], ...]}}``
# where event_ts is the trace's started_at in epoch seconds, capped at received_at.
POINTS_HEADER = "trulayer-points"


def _epoch(value: datetime) -> float:
    return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).timestamp()


def alert_points(tenant_id: str, received_at: datetime, traces: list[TraceRequest]) -> bytes:
    """The :data:`POINTS_HEADER` value for completed traces (project and started_at set)."""
    received = _epoch(received_at)
    groups: dict[str, list[list[Any]]] = {}
    for trace in traces:
        started = trace.get("started_at")
        event_ts = received if started is None else min(_epoch(started), received)
        is_error = 1 if trace.get("error") else 0
        point = [event_ts, trace.get("model") or "", trace.get("latency_ms"), is_error, trace.get("cost")]
        groups.setdefault(trace.get("project_id") or "", []).append(point)
    return orjson.dumps({"tenant_id": tenant_id, "groups": groups})
