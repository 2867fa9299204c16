"""``GET /v1/traces`` (filters, cursor pagination) and ``GET /v1/traces/{id}``.

Reads go to ClickHouse with server-side bound parameters only; ``FINAL`` collapses rows that
a redelivered Kafka record wrote twice. A page reads only the newest hours that hold it
(:mod:`gateway.trace_window`), so its cost does not grow with the tenant's history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from gateway.auth import Principal
from gateway.params import decode_cursor, encode_cursor, get_int, get_str, iso
from gateway.quality_rows import trace_quality
from gateway.resources import clickhouse_key, principal_key
from gateway.trace_filters import TraceFilters, Where, trace_filters
from gateway.trace_window import Count, hour_counts, minute_counts, needed_hours, windows
from trulayer_common.clickhouse import ClickHouse
from trulayer_common.errors import ApiError
from trulayer_common.http import json_response

__all__ = ["TRACE_COLUMNS", "PageCounts", "Where", "get_trace", "list_traces", "newest_page", "trace_out"]

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

TRACE_COLUMNS = (
    "id, project_id, session_id, external_id, name, input, output, model, latency_ms, cost, error, "
    "status, failure_type, prompt_tokens, completion_tokens, total_tokens, tag_list, tag_map, metadata, "
    "started_at, ended_at, created_at, span_count"
)


def _json_field(text: str) -> Any:
    """input/output/metadata are stored as text: JSON values come back as JSON, strings as strings."""
    if text == "":
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def trace_out(row: dict[str, Any]) -> dict[str, Any]:
    tag_list, tag_map = row["tag_list"], row["tag_map"]
    return {
        "id": row["id"],
        "project_id": row["project_id"],
        "session_id": row["session_id"] or None,
        "external_id": row["external_id"] or None,
        "name": row["name"] or None,
        "input": _json_field(row["input"]),
        "output": _json_field(row["output"]),
        "model": row["model"] or None,
        "latency_ms": row["latency_ms"],
        "cost": row["cost"],
        "error": row["error"],
        "status": row["status"],
        "failure_type": row["failure_type"] or None,
        "prompt_tokens": row["prompt_tokens"],
        "completion_tokens": row["completion_tokens"],
        "total_token_count": row["total_tokens"],
        "tags": dict(tag_map) if tag_map else list(tag_list),
        "metadata": _json_field(row["metadata"]) or {},
        "started_at": iso(row["started_at"]),
        "ended_at": iso(row["ended_at"]),
        "created_at": iso(row["created_at"]),
        "span_count": row["span_count"],
    }


@dataclass
class PageCounts:
    """The rollup counts a run of pages plans with (an export reads them once)."""

    hours: list[Count]
    minutes: dict[datetime, list[Count]] = field(default_factory=dict)


async def newest_page(
    ch: ClickHouse,
    filters: TraceFilters,
    limit: int,
    after: tuple[datetime, str] | None,
    counts: PageCounts | None = None,
) -> list[dict[str, Any]]:
    """The newest ``limit`` traces matching ``filters`` (older than the cursor ``after``), newest
    first. ``counts``: the counts of the filters when the caller keeps them across pages."""
    if after is not None and after[0].tzinfo is None:  # a row's time, as the engine returns it
        after = (after[0].replace(tzinfo=UTC), after[1])
    upper = after[0] if after is not None else filters.end
    if filters.end is not None and upper is not None:
        upper = min(upper, filters.end)
    if counts is None:
        counts = PageCounts(await hour_counts(ch, filters, upper, filters.start))
    for hour in needed_hours(counts.hours, upper, limit, filters):
        if hour not in counts.minutes:
            counts.minutes[hour] = await minute_counts(ch, filters, hour)
    where = Where(list(filters.where.clauses), dict(filters.where.params))
    if after is not None:
        where.add(
            "(started_at, id) < ({c_started:DateTime64(3, 'UTC')}, {c_id:String})", c_started=after[0], c_id=after[1]
        )
    rows: list[dict[str, Any]] = []
    for lower in (*windows(counts.hours, counts.minutes, upper, limit, filters), None):
        window = ""
        params = dict(where.params)
        if lower is not None:
            window = " AND started_at >= {w_lower:DateTime64(3, 'UTC')}"
            params["w_lower"] = lower
        rows = await ch.query(
            f"SELECT {TRACE_COLUMNS} FROM {ch.database}.traces FINAL WHERE {where.sql()}{window} "
            "ORDER BY started_at DESC, id DESC LIMIT {limit:UInt32}",
            {**params, "limit": limit},
        )
        if len(rows) >= limit:
            break
    return rows


async def list_traces(request: web.Request) -> web.Response:
    principal: Principal = request[principal_key]
    query = request.query
    filters = trace_filters(query, principal, request)
    limit = get_int(query, "limit", 1, MAX_LIMIT) or DEFAULT_LIMIT
    cursor = get_str(query, "cursor", 1024)
    after = decode_cursor(cursor) if cursor is not None else None
    rows = await newest_page(request.app[clickhouse_key], filters, limit + 1, after)
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1]["started_at"], rows[-1]["id"]) if has_more else None
    return json_response({"traces": [trace_out(r) for r in rows], "next_cursor": next_cursor, "has_more": has_more})


async def get_trace(request: web.Request) -> web.Response:
    principal: Principal = request[principal_key]
    trace_id = request.match_info["trace_id"]
    if len(trace_id) > 256:
        raise ApiError(404, "Trace not found", "not_found")
    ch = request.app[clickhouse_key]
    # No FINAL here: the newest version by created_at is what ReplacingMergeTree keeps, and
    # without FINAL the bloom filter on id skips every granule but the trace's own.
    rows = await ch.query(
        f"SELECT {TRACE_COLUMNS} FROM {ch.database}.traces "
        "WHERE tenant_id = {tenant:String} AND id = {id:String} ORDER BY created_at DESC LIMIT 1",
        {"tenant": principal.tenant.id, "id": trace_id},
        quick=True,
    )
    if not rows:
        raise ApiError(404, "Trace not found", "not_found")
    trace = trace_out(rows[0])
    key = {"tenant": principal.tenant.id, "project": trace["project_id"], "trace": trace_id}
    spans = await ch.query(
        "SELECT id, parent_span_id, name, type, input, output, model, latency_ms, cost, error, "
        "prompt_tokens, completion_tokens, metadata, start_time, end_time "
        f"FROM {ch.database}.spans FINAL WHERE tenant_id = {{tenant:String}} AND project_id = {{project:String}} "
        "AND trace_id = {trace:String} ORDER BY start_time, id",
        key,
        quick=True,
    )
    events = await ch.query(
        "SELECT id, span_id, level, message, metadata, timestamp "
        f"FROM {ch.database}.events FINAL WHERE tenant_id = {{tenant:String}} AND project_id = {{project:String}} "
        "AND trace_id = {trace:String} ORDER BY timestamp, id",
        key,
        quick=True,
    )
    trace["spans"] = [
        {
            **s,
            "parent_span_id": s["parent_span_id"] or None,
            "model": s["model"] or None,
            "input": _json_field(s["input"]),
            "output": _json_field(s["output"]),
            "metadata": _json_field(s["metadata"]) or {},
            "start_time": iso(s["start_time"]),
            "end_time": iso(s["end_time"]),
        }
        for s in spans
    ]
    trace["events"] = [
        {
            **e,
            "span_id": e["span_id"] or None,
            "metadata": _json_field(e["metadata"]) or {},
            "timestamp": iso(e["timestamp"]),
        }
        for e in events
    ]
    trace["span_count"] = len(spans)
    trace["feedback"], trace["evaluations"] = await trace_quality(
        ch, principal.tenant.id, trace["project_id"], trace_id
    )
    return json_response(trace)
