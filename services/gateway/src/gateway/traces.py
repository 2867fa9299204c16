"""``GET /v1/traces`` (filters, cursor pagination) and ``GET /v1/traces/{id}``.

Reads go to ClickHouse with server-side bound parameters only; ``FINAL`` collapses rows that
a redelivered Kafka record wrote twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from multidict import MultiMapping

from gateway.auth import Principal, project_for_read
from gateway.params import bad_param, decode_cursor, encode_cursor, get_bool, get_float, get_int, get_str, get_time, iso
from gateway.quality_rows import trace_quality
from gateway.resources import clickhouse_key, config_state, principal_key
from trulayer_common.errors import ApiError
from trulayer_common.failures import FAILURE_TYPES
from trulayer_common.http import json_response

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

TRACE_COLUMNS = (
    "id, project_id, session_id, external_id, name, input, output, model, latency_ms, cost, error, "
    "status, failure_type, prompt_tokens, completion_tokens, total_tokens, tag_list, tag_map, metadata, "
    "started_at, ended_at, created_at, span_count"
)


@dataclass
class Where:
    """A conjunction of SQL conditions with their bound parameters."""

    clauses: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def add(self, clause: str, **params: Any) -> None:
        self.clauses.append(clause)
        self.params.update(params)

    def sql(self) -> str:
        return " AND ".join(self.clauses) if self.clauses else "1"


def trace_filters(query: MultiMapping[str], principal: Principal, request: web.Request) -> Where:
    """The filters of API.md shared by list, export and metrics; every value bound, never spliced."""
    where = Where()
    where.add("tenant_id = {tenant:String}", tenant=principal.tenant.id)
    project = get_str(query, "project_id")
    if project is not None:
        resolved = project_for_read(request.app[config_state], principal, project)
        where.add("project_id = {project:String}", project=resolved.id)
    if (model := get_str(query, "model")) is not None:
        where.add("model = {model:String}", model=model)
    error = get_bool(query, "error")
    if error is not None:
        where.add("error IS NOT NULL" if error else "error IS NULL")
    failure = get_str(query, "failure_type")
    if failure is not None:
        if failure not in FAILURE_TYPES:
            raise bad_param("failure_type", f"expected one of {', '.join(FAILURE_TYPES)}")
        where.add("failure_type = {failure:String}", failure=failure)
    start, end = get_time(query, "from"), get_time(query, "to")
    if start is not None:
        where.add("started_at >= {from_ts:DateTime64(3, 'UTC')}", from_ts=start)
    if end is not None:
        where.add("started_at < {to_ts:DateTime64(3, 'UTC')}", to_ts=end)
    if start is not None and end is not None and start > end:
        raise bad_param("from", "must not be after 'to'")
    for name, column, op in (
        ("latency_min", "latency_ms", ">="),
        ("latency_max", "latency_ms", "<="),
    ):
        value = get_float(query, name)
        if value is not None:
            where.add(f"{column} {op} {{{name}:Float64}}", **{name: value})
    for name, op in (("token_count_min", ">="), ("token_count_max", "<=")):
        count = get_int(query, name, 0, 2**31)
        if count is not None:
            where.add(f"total_tokens {op} {{{name}:UInt64}}", **{name: count})
    tag_key, tag_value = get_str(query, "tag_key", 64), get_str(query, "tag_value", 64)
    if tag_value is not None and tag_key is None:
        raise bad_param("tag_value", "needs tag_key")
    if tag_key is not None and tag_value is None:
        where.add("(has(tag_list, {tag_key:String}) OR mapContains(tag_map, {tag_key:String}))", tag_key=tag_key)
    elif tag_key is not None:
        where.add(
            "(tag_map[{tag_key:String}] = {tag_value:String} "
            "OR has(tag_list, concat({tag_key:String}, ':', {tag_value:String})))",
            tag_key=tag_key,
            tag_value=tag_value,
        )
    if (session := get_str(query, "session_id")) is not None:
        where.add("session_id = {session:String}", session=session)
    return where


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


async def list_traces(request: web.Request) -> web.Response:
    principal: Principal = request[principal_key]
    query = request.query
    where = trace_filters(query, principal, request)
    limit = get_int(query, "limit", 1, MAX_LIMIT) or DEFAULT_LIMIT
    cursor = get_str(query, "cursor", 1024)
    if cursor is not None:
        c_started, c_id = decode_cursor(cursor)
        where.add(
            "(started_at, id) < ({c_started:DateTime64(3, 'UTC')}, {c_id:String})",
            c_started=c_started,
            c_id=c_id,
        )
    ch = request.app[clickhouse_key]
    rows = await ch.query(
        f"SELECT {TRACE_COLUMNS} FROM {ch.database}.traces FINAL WHERE {where.sql()} "
        "ORDER BY started_at DESC, id DESC LIMIT {limit:UInt32}",
        {**where.params, "limit": limit + 1},
    )
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
    )
    events = await ch.query(
        "SELECT id, span_id, level, message, metadata, timestamp "
        f"FROM {ch.database}.events FINAL WHERE tenant_id = {{tenant:String}} AND project_id = {{project:String}} "
        "AND trace_id = {trace:String} ORDER BY timestamp, id",
        key,
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
