"""The pure transform: one decoded ``trulayer.traces`` record → rows of traces, spans and events.

No I/O here (snuba's processor shape). The records were validated and completed by the
gateway (ids, project, timestamps) and ``topics.traces.decode`` checked their shape, so the
transform does not validate every field again: the hot path stays cheap. A trace, span or
event dict becomes its own row, completed in place with the columns derived here (tenant,
status, failure type, token totals, tags, retention); the engine does the rest as it reads
JSONEachRow (see :data:`INSERT_SETTINGS`): keys that are not columns are skipped, a null or
absent value takes the column default, and ``input``/``output``/``metadata`` of any JSON type
are stored as their JSON text (a string as itself). Anything unusable raises
:class:`~trulayer_common.topics.InvalidRecordError` and goes to the dead-letter topic; a record
the engine still rejects on insert is isolated there by the consumer loop.
"""

from __future__ import annotations

from typing import Any, cast

from trulayer_common.clickhouse.table_sink import TableRows
from trulayer_common.failures import classify_failure
from trulayer_common.schemas.ingest import EVENT_LEVELS, SPAN_TYPES
from trulayer_common.topics import InvalidRecordError
from trulayer_common.topics.traces import TraceEnvelope

_CANONICAL_SPAN_TYPES = frozenset(v for k, v in SPAN_TYPES.items() if k == v)
_CANONICAL_LEVELS = frozenset(v for k, v in EVENT_LEVELS.items() if k == v)


# How the engine reads these rows (ClickHouse's defaults, spelled out: the transform relies on them).
INSERT_SETTINGS = {
    "input_format_skip_unknown_fields": 1,
    "input_format_null_as_default": 1,
    "input_format_defaults_for_omitted_fields": 1,
    "input_format_json_read_objects_as_strings": 1,
    "input_format_json_read_arrays_as_strings": 1,
    "input_format_json_read_numbers_as_strings": 1,
    "input_format_json_read_bools_as_strings": 1,
    "date_time_input_format": "best_effort",
}


# OTLP parts (traces marked ``otlp`` by the gateway) are not trace rows: their spans and events
# are, and the part goes to this pseudo-table, from which the sink derives the trace row out of
# every span stored for the trace (:mod:`ingest_worker.trace_parts`).
TRACE_PARTS = "trace_parts"


def complete_trace_row(
    trace: dict[str, Any], tenant_id: str, created: Any, retention_days: int, span_count: int
) -> dict[str, Any]:
    """Complete a trace dict (spans and events already taken out) into its row, in place."""
    prompt = trace.get("prompt_tokens") or 0
    completion = trace.get("completion_tokens") or 0
    tags = trace.pop("tags", None)
    if tags:
        trace["tag_list" if isinstance(tags, list) else "tag_map"] = tags
    error = trace.get("error")
    if error:
        trace["status"] = "error"
        trace["failure_type"] = classify_failure(error)
    else:
        trace["status"] = "success"
    if not trace.get("metadata"):
        trace["metadata"] = "{}"
    trace["tenant_id"] = tenant_id
    trace["total_tokens"] = prompt + completion
    trace["created_at"] = created
    trace["span_count"] = span_count
    trace["retention_days"] = retention_days
    return trace


def _trace_rows(tenant_id: str, created: str, trace: dict[str, Any], retention_days: int, out: TableRows) -> None:
    """The trace dict becomes its own row, completed in place (it is ours: just decoded)."""
    trace_id = trace["id"]
    project_id = trace["project_id"]
    started = trace["started_at"]
    spans = trace.pop("spans", None) or ()
    events = trace.pop("events", None) or ()
    if trace.get("prompt_tokens") is None:
        trace["prompt_tokens"] = sum(s.get("prompt_tokens") or 0 for s in spans)
    if trace.get("completion_tokens") is None:
        trace["completion_tokens"] = sum(s.get("completion_tokens") or 0 for s in spans)
    if "otlp" in trace:
        # The part keeps its span rows (the same dicts) for the derivation of its trace row.
        trace.update(tenant_id=tenant_id, created_at=created, retention_days=retention_days, span_rows=spans)
        out[TRACE_PARTS].append(trace)
    else:
        out["traces"].append(complete_trace_row(trace, tenant_id, created, retention_days, len(spans)))
    # The columns a span or event row takes from its trace.
    inherited = {
        "tenant_id": tenant_id,
        "project_id": project_id,
        "trace_id": trace_id,
        "trace_started_at": started,
        "created_at": created,
        "retention_days": retention_days,
    }
    for span in spans:
        kind = span.get("type")
        if kind not in _CANONICAL_SPAN_TYPES:
            span["type"] = SPAN_TYPES.get(kind or "other", "other")
        if not span.get("metadata"):
            span["metadata"] = "{}"
        span.update(inherited)
        out["spans"].append(span)
    for event in events:
        level = event.get("level")
        if level not in _CANONICAL_LEVELS:
            event["level"] = EVENT_LEVELS.get(level or "info", "info")
        if not event.get("metadata"):
            event["metadata"] = "{}"
        if not event.get("timestamp"):
            event["timestamp"] = started
        event.update(inherited)
        out["events"].append(event)


def to_rows(envelope: TraceEnvelope, retention_days: int) -> TableRows:
    """Rows of one decoded record, per table. ``retention_days`` is the default TTL; a project's
    override in the envelope wins. Raises :class:`InvalidRecordError` for a value of the wrong
    type (the decoder checks the shape, not every value)."""
    tenant_id = envelope["tenant_id"]
    created = envelope["received_at"]
    overrides = envelope.get("retention_days") or {}
    rows: TableRows = {"traces": [], "spans": [], "events": [], TRACE_PARTS: []}
    # The decoded dicts are ours: each is completed in place into its row.
    traces = cast(list[dict[str, Any]], envelope["payload"]["traces"])
    try:
        for trace in traces:
            days = overrides.get(trace["project_id"], retention_days)
            _trace_rows(tenant_id, created, trace, int(days), rows)
    except (AttributeError, TypeError, ValueError) as exc:  # a value of the wrong type somewhere
        raise InvalidRecordError(f"malformed trace: {exc}") from None
    return rows
