"""The pure transform: one ``trulayer.traces`` record → rows of traces, spans and events.

No I/O here (snuba's processor shape). Anything that fails to parse raises
:class:`InvalidRecordError`, which the worker sends to the dead-letter topic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from trulayer_common.failures import classify_failure
from trulayer_common.schemas import Envelope, TraceRequest
from trulayer_common.schemas.envelope import SCHEMA_VERSION


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


def _ts(value: datetime | None) -> str | None:
    """DateTime64(3) text in UTC, the format JSONEachRow parses without extra settings."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d}"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _trace_rows(envelope: Envelope, trace: TraceRequest, retention_days: int, out: Rows) -> None:
    if trace.id is None or trace.project_id is None or trace.started_at is None:
        raise InvalidRecordError("trace without id, project_id or started_at: not produced by the gateway")
    tenant_id, project_id = envelope.tenant_id, trace.project_id
    started = _ts(trace.started_at)
    created = _ts(envelope.received_at)
    prompt = trace.prompt_tokens
    completion = trace.completion_tokens
    if prompt is None:
        prompt = sum(s.prompt_tokens or 0 for s in trace.spans)
    if completion is None:
        completion = sum(s.completion_tokens or 0 for s in trace.spans)
    tags = trace.tags
    out.traces.append(
        {
            "tenant_id": tenant_id,
            "project_id": project_id,
            "id": trace.id,
            "session_id": trace.session_id or "",
            "external_id": trace.external_id or "",
            "name": trace.name or "",
            "input": _text(trace.input),
            "output": _text(trace.output),
            "model": trace.model or "",
            "latency_ms": trace.latency_ms,
            "cost": trace.cost,
            "error": trace.error,
            "status": "error" if trace.error else "success",
            "failure_type": classify_failure(trace.error),
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "tag_list": tags if isinstance(tags, list) else [],
            "tag_map": tags if isinstance(tags, dict) else {},
            "metadata": _text(trace.metadata or {}),
            "started_at": started,
            "ended_at": _ts(trace.ended_at),
            "created_at": created,
            "span_count": len(trace.spans),
            "retention_days": retention_days,
        }
    )
    for span in trace.spans:
        if span.id is None:
            raise InvalidRecordError(f"span without id in trace {trace.id}")
        out.spans.append(
            {
                "tenant_id": tenant_id,
                "project_id": project_id,
                "trace_id": trace.id,
                "id": span.id,
                "parent_span_id": span.parent_span_id or "",
                "name": span.name,
                "type": span.type,
                "input": _text(span.input),
                "output": _text(span.output),
                "model": span.model or "",
                "latency_ms": span.latency_ms,
                "cost": span.cost,
                "error": span.error,
                "prompt_tokens": span.prompt_tokens or 0,
                "completion_tokens": span.completion_tokens or 0,
                "metadata": _text(span.metadata or {}),
                "start_time": _ts(span.start_time),
                "end_time": _ts(span.end_time),
                "trace_started_at": started,
                "created_at": created,
                "retention_days": retention_days,
            }
        )
    for event in trace.events:
        if event.id is None:
            raise InvalidRecordError(f"event without id in trace {trace.id}")
        out.events.append(
            {
                "tenant_id": tenant_id,
                "project_id": project_id,
                "trace_id": trace.id,
                "id": event.id,
                "span_id": event.span_id or "",
                "level": event.level,
                "message": event.message,
                "metadata": _text(event.metadata or {}),
                "timestamp": _ts(event.timestamp) or started,
                "trace_started_at": started,
                "created_at": created,
                "retention_days": retention_days,
            }
        )


def to_rows(value: bytes | None, retention_days: int) -> Rows:
    """Rows for one record. Raises :class:`InvalidRecordError` for anything unusable."""
    if value is None:
        raise InvalidRecordError("empty record")
    try:
        envelope = Envelope.model_validate_json(value)
    except ValidationError as exc:
        raise InvalidRecordError(f"not a trace envelope: {exc.errors(include_url=False)[:3]}") from None
    if envelope.schema_version > SCHEMA_VERSION:
        raise InvalidRecordError(f"schema_version {envelope.schema_version} is newer than {SCHEMA_VERSION}")
    rows = Rows()
    for trace in envelope.payload.traces:
        _trace_rows(envelope, trace, retention_days, rows)
    return rows
