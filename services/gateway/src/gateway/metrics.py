"""``GET /v1/metrics``: the TruLayer summary, plus GuardLayer's breakdowns when ``hours`` is given.

``error_rate`` is a percentage (0–100) in both shapes, as GuardLayer and the alerter use it.
Latency quantiles come from ClickHouse's ``quantiles`` (exact below 8,192 values, sampled above).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from gateway.auth import Principal
from gateway.params import bad_param, get_float, iso
from gateway.resources import clickhouse_key, principal_key
from gateway.traces import trace_filters
from trulayer_common.http import json_response

MAX_HOURS = 24 * 366


def _money(value: float | None) -> str:
    return f"{value or 0.0:.4f}"


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


async def get_metrics(request: web.Request) -> web.Response:
    principal: Principal = request[principal_key]
    query = request.query
    hours = get_float(query, "hours", minimum=0.0)
    if hours is not None and not 0 < hours <= MAX_HOURS:
        raise bad_param("hours", f"expected a number of hours from 0 (exclusive) to {MAX_HOURS}")
    now = datetime.now(UTC)
    has_range = "from" in query or "to" in query
    # Default window: the last `hours` (GuardLayer) or the last 24 h (TruLayer).
    window = {}
    if not has_range:
        window = {"from": iso(now - timedelta(hours=hours or 24)), "to": iso(now + timedelta(seconds=1))}
    where = trace_filters({**query, **window}, principal, request)  # type: ignore[arg-type]
    start = where.params.get("from_ts")
    end = where.params.get("to_ts")
    ch = request.app[clickhouse_key]
    table = f"{ch.database}.traces FINAL"
    summary = (
        await ch.query(
            "SELECT count() AS total, countIf(error IS NOT NULL) AS errors, "
            "quantilesIf(0.5, 0.95, 0.99)(latency_ms, latency_ms IS NOT NULL) AS q, "
            "avgIf(latency_ms, latency_ms IS NOT NULL) AS avg_latency, sum(ifNull(cost, 0)) AS cost, "
            "sum(total_tokens) AS tokens, sum(prompt_tokens) AS tokens_in, sum(completion_tokens) AS tokens_out "
            f"FROM {table} WHERE {where.sql()}",
            where.params,
        )
    )[0]
    total = int(summary["total"])
    quantiles = summary["q"] if total else [None, None, None]
    error_rate = round(100.0 * summary["errors"] / total, 2) if total else 0.0
    body: dict[str, Any] = {
        "total_traces": total,
        "error_count": int(summary["errors"]),
        "error_rate": error_rate,
        "p50_latency_ms": _round(quantiles[0]),
        "p95_latency_ms": _round(quantiles[1]),
        "p99_latency_ms": _round(quantiles[2]),
        "total_cost": round(float(summary["cost"]), 6),
        "total_tokens": int(summary["tokens"]),
        "from": iso(start),
        "to": iso(end),
    }
    if hours is not None:
        body.update(await _guardlayer_shape(ch, table, where.sql(), where.params, summary, hours, start))
    return json_response(body)


async def _guardlayer_shape(
    ch: Any, table: str, where: str, params: dict[str, Any], summary: dict[str, Any], hours: float, start: Any
) -> dict[str, Any]:
    by_model = await ch.query(
        "SELECT model, count() AS calls, avgIf(latency_ms, latency_ms IS NOT NULL) AS avg_latency, "
        "sum(total_tokens) AS tokens, sum(ifNull(cost, 0)) AS cost, countIf(error IS NOT NULL) AS errors "
        f"FROM {table} WHERE {where} GROUP BY model ORDER BY calls DESC, model",
        params,
    )
    by_status = await ch.query(
        f"SELECT status, count() AS count FROM {table} WHERE {where} GROUP BY status ORDER BY count DESC, status",
        params,
    )
    timeline = await ch.query(
        "SELECT toStartOfHour(started_at) AS hour, count() AS calls, "
        "avgIf(latency_ms, latency_ms IS NOT NULL) AS avg_latency, sum(ifNull(cost, 0)) AS cost, "
        f"countIf(error IS NOT NULL) AS errors FROM {table} WHERE {where} GROUP BY hour ORDER BY hour",
        params,
    )
    total = int(summary["total"])
    return {
        "period_hours": hours,
        "since": iso(start),
        "total_calls": total,
        "avg_latency_ms": _round(summary["avg_latency"]) if total else 0,
        "total_cost_usd": _money(summary["cost"]),
        "total_tokens_in": int(summary["tokens_in"]),
        "total_tokens_out": int(summary["tokens_out"]),
        "by_model": [
            {
                "model": m["model"] or None,
                "calls": int(m["calls"]),
                "avg_latency_ms": _round(m["avg_latency"]),
                "total_tokens": int(m["tokens"]),
                "cost_usd": _money(m["cost"]),
                "errors": int(m["errors"]),
            }
            for m in by_model
        ],
        "by_status": [{"status": s["status"], "count": int(s["count"])} for s in by_status],
        "timeline": [
            {
                "hour": iso(t["hour"]),
                "calls": int(t["calls"]),
                "avg_latency_ms": _round(t["avg_latency"]),
                "cost_usd": f"{t['cost'] or 0.0:.6f}",
                "errors": int(t["errors"]),
            }
            for t in timeline
        ],
    }
