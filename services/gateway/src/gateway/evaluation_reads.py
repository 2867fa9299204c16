"""Reads of evaluations and feedback (API.md "Feedback and evals"), from ClickHouse, tenant-scoped.

* ``GET /v1/eval``: filters ``trace_id, project_id, metric, status, from, to`` (on
  ``created_at``), ``score_min, score_max``; newest first, ``limit`` ≤ 200, ``cursor``.
* ``GET /v1/eval/{eval_id}``: one evaluation with its configuration and the judge's prompt.
* ``GET /v1/eval/trends``: average score, count and pass rate of complete evaluations per
  metric and time bucket (``interval`` minute|hour|day, default hour; ``from`` default
  ``to`` − 24 h; at most :data:`MAX_BUCKETS` buckets).

Evaluations are stored once per state; ``FINAL`` keeps each one's latest (highest version).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from gateway.auth import project_for_read
from gateway.params import bad_param, decode_cursor, encode_cursor, get_float, get_int, get_str, get_time, iso
from gateway.quality_rows import COLUMNS, evaluation_json
from gateway.resources import clickhouse_key, config_state, principal_key
from gateway.traces import Where
from trulayer_common.errors import not_found
from trulayer_common.http import json_response
from trulayer_common.routing import path_param

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_BUCKETS = 10_000
STATUSES = ("pending", "running", "complete", "failed", "skipped")
INTERVALS = {"minute": ("toStartOfMinute", 60), "hour": ("toStartOfHour", 3600), "day": ("toStartOfDay", 86400)}


def _filters(request: web.Request) -> Where:
    principal = request[principal_key]
    query = request.query
    where = Where()
    where.add("tenant_id = {tenant:String}", tenant=principal.tenant.id)
    if (project := get_str(query, "project_id")) is not None:
        where.add(
            "project_id = {project:String}", project=project_for_read(request.app[config_state], principal, project).id
        )
    if (trace_id := get_str(query, "trace_id")) is not None:
        where.add("trace_id = {trace_id:String}", trace_id=trace_id)
    if (metric := get_str(query, "metric", 100)) is not None:
        where.add("metric_name = {metric:String}", metric=metric)
    if (status := get_str(query, "status", 16)) is not None:
        if status not in STATUSES:
            raise bad_param("status", f"expected one of {', '.join(STATUSES)}")
        where.add("status = {status:String}", status=status)
    start, end = get_time(query, "from"), get_time(query, "to")
    if start is not None and end is not None and start > end:
        raise bad_param("from", "must not be after 'to'")
    if start is not None:
        where.add("created_at >= {from_ts:DateTime64(3, 'UTC')}", from_ts=start)
    if end is not None:
        where.add("created_at < {to_ts:DateTime64(3, 'UTC')}", to_ts=end)
    low, high = get_float(query, "score_min"), get_float(query, "score_max")
    for name, value in (("score_min", low), ("score_max", high)):
        if value is not None and value > 1:
            raise bad_param(name, "expected a number from 0 to 1")
    if low is not None and high is not None and low > high:
        raise bad_param("score_min", "must not be above 'score_max'")
    if low is not None:
        where.add("score >= {score_min:Float64}", score_min=low)
    if high is not None:
        where.add("score <= {score_max:Float64}", score_max=high)
    return where


async def list_evaluations(request: web.Request) -> web.Response:
    where = _filters(request)
    limit = get_int(request.query, "limit", 1, MAX_LIMIT) or DEFAULT_LIMIT
    cursor = get_str(request.query, "cursor", 1024)
    if cursor is not None:
        c_at, c_id = decode_cursor(cursor)
        where.add("(created_at, id) < ({c_at:DateTime64(3, 'UTC')}, {c_id:String})", c_at=c_at, c_id=c_id)
    ch = request.app[clickhouse_key]
    rows = await ch.query(
        f"SELECT {COLUMNS} FROM {ch.database}.evaluations FINAL WHERE {where.sql()} "
        "ORDER BY created_at DESC, id DESC LIMIT {limit:UInt32}",
        {**where.params, "limit": limit + 1},
    )
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if has_more else None
    return json_response(
        {"evaluations": [evaluation_json(r) for r in rows], "next_cursor": next_cursor, "has_more": has_more}
    )


async def get_evaluation(request: web.Request) -> web.Response:
    eval_id = path_param(request, "eval_id")
    ch = request.app[clickhouse_key]
    rows = await ch.query(
        f"SELECT {COLUMNS}, judge_prompt, config FROM {ch.database}.evaluations FINAL "
        "WHERE tenant_id = {tenant:String} AND id = {id:String} LIMIT 1",
        {"tenant": request[principal_key].tenant.id, "id": eval_id},
    )
    if not rows:
        raise not_found(f"Evaluation '{eval_id}' not found")
    return json_response(evaluation_json(rows[0], detail=True))


async def eval_trends(request: web.Request) -> web.Response:
    query = request.query
    interval = get_str(query, "interval", 16) or "hour"
    if interval not in INTERVALS:
        raise bad_param("interval", f"expected one of {', '.join(INTERVALS)}")
    bucket_fn, seconds = INTERVALS[interval]
    end = get_time(query, "to") or datetime.now(UTC)
    start = get_time(query, "from") or end - timedelta(hours=24)
    if start >= end:
        raise bad_param("from", "must be before 'to'")
    if (end - start).total_seconds() / seconds > MAX_BUCKETS:
        raise bad_param("interval", f"more than {MAX_BUCKETS} buckets between 'from' and 'to'")
    where = _filters(request)
    where.add("created_at >= {t_from:DateTime64(3, 'UTC')}", t_from=start)
    where.add("created_at < {t_to:DateTime64(3, 'UTC')}", t_to=end)
    where.add("status = 'complete' AND score IS NOT NULL")
    ch = request.app[clickhouse_key]
    rows = await ch.query(
        f"SELECT metric_name, {bucket_fn}(created_at) AS bucket, avg(score) AS avg_score, count() AS n, "
        f"countIf(label = 'pass') / count() AS pass_rate FROM {ch.database}.evaluations FINAL "
        f"WHERE {where.sql()} GROUP BY metric_name, bucket ORDER BY metric_name, bucket",
        where.params,
    )
    series: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        series.setdefault(row["metric_name"], []).append(
            {
                "bucket_start": iso(row["bucket"]),
                "avg_score": round(float(row["avg_score"]), 6),
                "count": int(row["n"]),
                "pass_rate": round(float(row["pass_rate"]), 6),
            }
        )
    return json_response(
        {
            "interval": interval,
            "from": iso(start),
            "to": iso(end),
            "series": [{"metric_name": name, "points": points} for name, points in series.items()],
        }
    )
