"""``GET /v1/ingestion-health?project_id&window=1h|24h|7d``: is the tenant's data arriving?

* requests: what the gateway answered to the tenant's ingest requests in the window (counted
  per tenant by :mod:`gateway.ingest_outcomes`; not per project, as a refused request often has
  no project), success and error rates, and the top error categories (status and code);
* traces stored in the window, the ingest lag (received by the gateway → stored) p50/p95/p99
  and max, and the last time a stored trace was received, from ``ingest_health_minute`` (filled
  by a view on every insert; lag percentiles within 1 %, :mod:`gateway.query.histogram`);
* dead letters: records of the tenant that reached the dead-letter topic, in the window and in
  all (``dead_letters``, kept 30 days).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from gateway.auth import project_for_read
from gateway.ingest_outcomes import OK, ingest_outcomes_key
from gateway.params import bad_param, get_str, iso
from gateway.query.histogram import quantile
from gateway.resources import clickhouse_key, config_state, principal_key
from trulayer_common.http import json_response

WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
TOP_ERRORS = 10


def _requests(counts: dict[str, int]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    accepted = counts.get(OK, 0)
    errors = [(field, n) for field, n in counts.items() if field != OK]
    rejected = sum(n for _, n in errors)
    total = accepted + rejected
    summary = {
        "total": total,
        "accepted": accepted,
        "rejected": rejected,
        "success_rate": round(accepted / total, 4) if total else None,
        "error_rate": round(rejected / total, 4) if total else None,
    }
    top = []
    for field, n in sorted(errors, key=lambda item: (-item[1], item[0]))[:TOP_ERRORS]:
        status, _, code = field.partition(":")
        top.append({"status": int(status), "code": code or None, "count": n})
    return summary, top


async def get_ingestion_health(request: web.Request) -> web.Response:
    principal = request[principal_key]
    tenant_id = principal.tenant.id
    window_name = get_str(request.query, "window") or "24h"
    if window_name not in WINDOWS:
        raise bad_param("window", f"expected one of {', '.join(WINDOWS)}")
    project = get_str(request.query, "project_id")
    project_id = project_for_read(request.app[config_state], principal, project).id if project else None
    now = datetime.now(UTC)
    since = now - WINDOWS[window_name]
    ch = request.app[clickhouse_key]
    params: dict[str, Any] = {"tenant": tenant_id, "since": since, "project": project_id or ""}
    scope = "tenant_id = {tenant:String}" + (" AND project_id = {project:String}" if project_id else "")
    stored = (
        await ch.query(
            "SELECT toUInt64(sum(traces)) AS traces, sumMap(lag_bins) AS bins, max(lag_max) AS lag_max "
            f"FROM {ch.database}.ingest_health_minute WHERE {scope} "
            "AND bucket >= toStartOfMinute({since:DateTime64(3, 'UTC')})",
            params,
        )
    )[0]
    last = (
        await ch.query(
            f"SELECT max(last_received) AS at, count() AS n FROM {ch.database}.ingest_health_minute WHERE {scope}",
            params,
        )
    )[0]
    letters = (
        await ch.query(
            "SELECT count() AS total, countIf(dead_at >= {since:DateTime64(3, 'UTC')}) AS recent "
            f"FROM {ch.database}.dead_letters FINAL WHERE {scope}",
            params,
        )
    )[0]
    counts = await request.app[ingest_outcomes_key].read(tenant_id, since.timestamp(), now.timestamp())
    requests, top = _requests(dict(counts))
    traces = int(stored["traces"] or 0)
    bins = stored["bins"] or {}
    high = float(stored["lag_max"]) if traces else None
    return json_response(
        {
            "window": window_name,
            "from": iso(since),
            "to": iso(now),
            "project_id": project_id,
            "requests": requests,
            "top_errors": top,
            "traces_stored": traces,
            "ingest_lag_ms": {
                "p50": quantile(bins, 0.5, None, high),
                "p95": quantile(bins, 0.95, None, high),
                "p99": quantile(bins, 0.99, None, high),
                "max": high,
            },
            "dead_letters": {"in_window": int(letters["recent"]), "total": int(letters["total"])},
            "last_trace_at": iso(last["at"]) if int(last["n"]) else None,
        }
    )
