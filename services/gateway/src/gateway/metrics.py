"""``GET /v1/metrics``: the TruLayer summary, plus GuardLayer's breakdowns when ``hours`` is given.

``error_rate`` is a percentage (0–100) in both shapes, as GuardLayer and the alerter use it; an
error is a trace stored with a non-empty ``error`` (status ``error``). Answered by the query
layer (:mod:`gateway.query`): from the rollups when the filters are rollup dimensions (project,
model, error, failure type, window), from raw rows otherwise, the same numbers either way.
Latency quantiles come from the histograms (within 1 % of the true value).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from aiohttp import web

from gateway.auth import Principal
from gateway.metrics_query import query_engine_key
from gateway.params import bad_param, get_float, iso
from gateway.query.histogram import quantile
from gateway.query.intervals import Interval
from gateway.query.partials import Partial, exact_sum, merge
from gateway.query.request import Aggregation, Filter, Query, Target
from gateway.query.sources import TRACES
from gateway.query.sql import Columns
from gateway.resources import principal_key
from gateway.trace_filters import trace_filters
from trulayer_common.http import json_response

MAX_HOURS = 24 * 366
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
# Traces may start up to a day after their receipt (the ingest bounds): an open-ended window
# ends there.
FUTURE = timedelta(days=1, seconds=1)
_F = TRACES.fields
_AGGREGATIONS = (
    Aggregation("count", _F["latencyMs"]),
    Aggregation("sum", _F["latencyMs"]),
    Aggregation("p50", _F["latencyMs"]),
    Aggregation("sum", _F["costInUSD"]),
    Aggregation("sum", _F["totalTokens"]),
    Aggregation("sum", _F["inputTokens"]),
    Aggregation("sum", _F["outputTokens"]),
)
_BY = (Target("modelName", field=_F["modelName"]), Target("status", field=_F["status"]))
_BY_STATUS = (Target("status", field=_F["status"]),)


def _money(value: float | Decimal | None) -> str:
    return f"{value or 0.0:.4f}"


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


class _Summary:
    """Reads of merged partials (``Columns`` aliases by field and statistic)."""

    def __init__(self, columns: Columns, part: Partial) -> None:
        self.columns, self.part = columns, part

    def stat(self, field: str, name: str) -> Any:
        alias = self.columns.find(_F[field], name)
        return None if alias is None else self.part.stats.get(alias)

    def sum(self, field: str) -> Decimal:
        return exact_sum(self.stat(field, "sum"))

    def avg_latency(self) -> float | None:
        count = int(self.stat("latencyMs", "count") or 0)
        return float(self.sum("latencyMs")) / count if count else None

    def quantile(self, q: float) -> float | None:
        return quantile(
            self.stat("latencyMs", "bins") or {}, q, self.stat("latencyMs", "min"), self.stat("latencyMs", "max")
        )


def _errors(parts: Iterable[tuple[tuple[str | None, ...], Partial]], status_at: int) -> int:
    return sum(part.total for key, part in parts if key[status_at] == "error")


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
    filters = trace_filters({**query, **window}, principal, request)  # type: ignore[arg-type]
    start, end = filters.start or EARLIEST, filters.end or now + FUTURE
    engine = request.app[query_engine_key]
    conditions = tuple(
        Filter(Target(name, field=_F[name]), "EQUAL", value) for name, value in filters.dimensions.items()
    )
    if filters.error is not None:
        conditions += (
            Filter(Target("status", field=_F["status"]), "EQUAL" if filters.error else "NOT_EQUAL", "error"),
        )
    expressible = set(filters.where.params) <= {"tenant", "project", "model", "failure", "from_ts", "to_ts"}
    raw = None if expressible else (filters.where.sql(), filters.where.params)

    def query_of(interval: Interval | None, group_by: tuple[Target, ...]) -> Query:
        return Query(TRACES, start, end, interval, _AGGREGATIONS, group_by, conditions, raw)

    body: dict[str, Any] = {}
    if end > start:
        found = await engine.partials(query_of(None, _BY), principal.tenant.id)
        parts = [(key, part) for (_, key), part in found.parts.items()]
        summary = _Summary(found.columns, merge(found.columns, (part for _, part in parts)))
    else:
        found, parts, summary = None, [], _Summary(Columns.of(query_of(None, _BY)), Partial())
    total = summary.part.total
    errors = _errors(parts, 1)
    body.update(
        {
            "total_traces": total,
            "error_count": errors,
            "error_rate": round(100.0 * errors / total, 2) if total else 0.0,
            "p50_latency_ms": _round(summary.quantile(0.5)),
            "p95_latency_ms": _round(summary.quantile(0.95)),
            "p99_latency_ms": _round(summary.quantile(0.99)),
            "total_cost": round(float(summary.sum("costInUSD")), 6),
            "total_tokens": int(summary.sum("totalTokens")),
            "from": iso(filters.start),
            "to": iso(filters.end),
        }
    )
    if hours is not None:
        timeline: list[dict[str, Any]] = []
        if found is not None:
            series = await engine.partials(query_of(Interval(1, "hour"), _BY_STATUS), principal.tenant.id)
            timeline = _timeline(series.columns, series.parts)
        body.update(
            _guardlayer_shape(found.columns if found else summary.columns, parts, summary, hours, filters.start)
        )
        body["timeline"] = timeline
    return json_response(body)


def _timeline(columns: Columns, parts: Any) -> list[dict[str, Any]]:
    by_hour: dict[int, list[tuple[Any, Partial]]] = {}
    for (bucket, key), part in parts.items():
        by_hour.setdefault(bucket, []).append((key, part))
    out = []
    for bucket in sorted(by_hour):
        items = by_hour[bucket]
        merged = _Summary(columns, merge(columns, (p for _, p in items)))
        if merged.part.total == 0:
            continue
        out.append(
            {
                "hour": iso(Interval(1, "hour").start_of(bucket)),
                "calls": merged.part.total,
                "avg_latency_ms": _round(merged.avg_latency()),
                "cost_usd": f"{merged.sum('costInUSD'):.6f}",
                "errors": _errors(items, 0),
            }
        )
    return out


def _guardlayer_shape(
    columns: Columns, parts: list[tuple[Any, Partial]], summary: _Summary, hours: float, start: datetime | None
) -> dict[str, Any]:
    by_model: dict[str | None, list[tuple[Any, Partial]]] = {}
    by_status: dict[str, int] = {}
    for key, part in parts:
        by_model.setdefault(key[0], []).append((key, part))
        status = key[1] or ""
        by_status[status] = by_status.get(status, 0) + part.total
    models: list[dict[str, Any]] = []
    for model, items in by_model.items():
        merged = _Summary(columns, merge(columns, (p for _, p in items)))
        models.append(
            {
                "model": model,
                "calls": merged.part.total,
                "avg_latency_ms": _round(merged.avg_latency()),
                "total_tokens": int(merged.sum("totalTokens")),
                "cost_usd": _money(merged.sum("costInUSD")),
                "errors": _errors(items, 1),
            }
        )
    models.sort(key=lambda m: (-m["calls"], m["model"] or ""))
    total = summary.part.total
    return {
        "period_hours": hours,
        "since": iso(start),
        "total_calls": total,
        "avg_latency_ms": _round(summary.avg_latency()) if total else 0,
        "total_cost_usd": _money(summary.sum("costInUSD")),
        "total_tokens_in": int(summary.sum("inputTokens")),
        "total_tokens_out": int(summary.sum("outputTokens")),
        "by_model": models,
        "by_status": [
            {"status": status, "count": count}
            for status, count in sorted(by_status.items(), key=lambda item: (-item[1], item[0]))
        ],
    }
