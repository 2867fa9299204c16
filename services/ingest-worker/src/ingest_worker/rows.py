"""The pure transform: one ``trulayer.traces`` record → rows of traces, spans and events.

No I/O here (snuba's processor shape). The records were validated and completed by the
gateway (ids, project, timestamps), so the worker parses them with orjson and checks their
shape rather than validating every field again: the hot path stays cheap. Anything unusable
raises :class:`InvalidRecordError` and goes to the dead-letter topic; a record the engine
still rejects on insert is isolated there by the worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from trulayer_common.failures import classify_failure
from trulayer_common.schemas.envelope import SCHEMA_VERSION
from trulayer_common.schemas.ingest import EVENT_LEVELS, SPAN_TYPES


class InvalidRecordError(ValueError):
    """The record cannot be turned into rows (bad JSON, unknown schema, missing ids)."""


@dataclass
class Rows:
    traces: list[dict[str, Any]] = field(default_factory=list)
    spans: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def extend(self, other: Rows) -> None:
        self.traces.extend(other.traces)
        self.spans.extend(other.spans)
        self.events.extend(other.events)

    def __len__(self) -> int:
        return len(self.traces)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _required(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidRecordError(f"{where} without {key}: not produced by the gateway")
    return value


def _trace_rows(tenant_id: str, created: str, trace: dict[str, Any], retention_days: int, out: Rows) -> None:
    trace_id = _required(trace, "id", "trace")
    project_id = _required(trace, "project_id", "trace")
    started = _required(trace, "started_at", "trace")
    spans = trace.get("spans") or []
    events = trace.get("events") or []
    prompt = trace.get("prompt_tokens")
    completion = trace.get("completion_tokens")
    if prompt is None:
        prompt = sum(s.get("prompt_tokens") or 0 for s in spans)
    if completion is None:
        completion = sum(s.get("completion_tokens") or 0 for s in spans)
    tags = trace.get("tags")
    error = trace.get("error")
    out.traces.append(
        {
            "tenant_id": tenant_id,
            "project_id": project_id,
            "id": trace_id,
            "session_id": trace.get("session_id") or "",
            "external_id": trace.get("external_id") or "",
            "name": trace.get("name") or "",
            "input": _text(trace.get("input")),
            "output": _text(trace.get("output")),
            "model": trace.get("model") or "",
            "latency_ms": trace.get("latency_ms"),
            "cost": trace.get("cost"),
            "error": error,
            "status": "error" if error else "success",
            "failure_type": classify_failure(error),
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "tag_list": tags if isinstance(tags, list) else [],
            "tag_map": tags if isinstance(tags, dict) else {},
            "metadata": _text(trace.get("metadata") or {}),
            "started_at": started,
            "ended_at": trace.get("ended_at"),
            "created_at": created,
            "span_count": len(spans),
            "retention_days": retention_days,
        }
    )
    for span in spans:
        out.spans.append(
            {
                "tenant_id": tenant_id,
                "project_id": project_id,
                "trace_id": trace_id,
                "id": _required(span, "id", f"span of trace {trace_id}"),
                "parent_span_id": span.get("parent_span_id") or "",
                "name": span.get("name") or "",
                "type": SPAN_TYPES.get(span.get("type") or "other", "other"),
                "input": _text(span.get("input")),
                "output": _text(span.get("output")),
                "model": span.get("model") or "",
                "latency_ms": span.get("latency_ms"),
                "cost": span.get("cost"),
                "error": span.get("error"),
                "prompt_tokens": span.get("prompt_tokens") or 0,
                "completion_tokens": span.get("completion_tokens") or 0,
                "metadata": _text(span.get("metadata") or {}),
                "start_time": span.get("start_time"),
                "end_time": span.get("end_time"),
                "trace_started_at": started,
                "created_at": created,
                "retention_days": retention_days,
            }
        )
    for event in events:
        out.events.append(
            {
                "tenant_id": tenant_id,
                "project_id": project_id,
                "trace_id": trace_id,
                "id": _required(event, "id", f"event of trace {trace_id}"),
                "span_id": event.get("span_id") or "",
                "level": EVENT_LEVELS.get(event.get("level") or "info", "info"),
                "message": event.get("message") or "",
                "metadata": _text(event.get("metadata") or {}),
                "timestamp": event.get("timestamp") or started,
                "trace_started_at": started,
                "created_at": created,
                "retention_days": retention_days,
            }
        )


def to_rows(value: bytes | None, retention_days: int) -> Rows:
    """Rows for one record. ``retention_days`` is the default TTL; a project's override in the
    envelope wins. Raises :class:`InvalidRecordError` for anything unusable."""
    if value is None:
        raise InvalidRecordError("empty record")
    try:
        envelope = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise InvalidRecordError(f"not JSON: {exc}") from None
    if not isinstance(envelope, dict):
        raise InvalidRecordError("not a trace envelope: not an object")
    version = envelope.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise InvalidRecordError(
            f"not a trace envelope: schema_version {version!r} (this worker reads ≤ {SCHEMA_VERSION})"
        )
    payload = envelope.get("payload")
    traces = payload.get("traces") if isinstance(payload, dict) else None
    if not isinstance(traces, list):
        raise InvalidRecordError("not a trace envelope: no payload.traces array")
    tenant_id = _required(envelope, "tenant_id", "envelope")
    created = _required(envelope, "received_at", "envelope")
    overrides = envelope.get("retention_days") or {}
    if not isinstance(overrides, dict):
        raise InvalidRecordError("not a trace envelope: retention_days is not an object")
    rows = Rows()
    try:
        for trace in traces:
            days = overrides.get(trace.get("project_id"), retention_days)
            _trace_rows(tenant_id, created, trace, int(days), rows)
    except (AttributeError, TypeError, ValueError) as exc:  # an item of the wrong type somewhere
        raise InvalidRecordError(f"malformed trace: {exc}") from None
    return rows
