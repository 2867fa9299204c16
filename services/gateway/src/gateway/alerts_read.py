"""``GET /v1/anomalies`` and ``GET /v1/anomalies/{id}``: anomalies the alerter detected, from ClickHouse.

Filters: ``project_id`` (id or name), ``type`` (latency_spike | error_rate_spike |
volume_anomaly), ``severity``, ``from``/``to`` (on the anomaly's window start), ``limit``
(default 50, max 200). Newest first. Alert rules and webhooks are not here: the control-engine
owns them (forwarded by :mod:`gateway.control_proxy`).
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from aiohttp import web

from gateway.auth import project_for_read
from gateway.params import bad_param, get_int, get_time
from gateway.resources import clickhouse_key, config_state, principal_key
from trulayer_common.errors import not_found
from trulayer_common.http import json_response

ANOMALY_TYPES = ("latency_spike", "error_rate_spike", "volume_anomaly")
SEVERITIES = ("low", "medium", "high", "critical")
_COLUMNS = (
    "id, project_id, type, metric, severity, observed_value, baseline_mean, baseline_std, z_score, "
    "window_start, window_end, detected_at"
)


def anomaly_json(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for name in ("window_start", "window_end", "detected_at"):
        out[name] = row[name].replace(tzinfo=UTC).isoformat()
    for name in ("observed_value", "baseline_mean", "baseline_std", "z_score"):
        out[name] = round(float(row[name]), 4)
    return out


async def list_anomalies(request: web.Request) -> web.Response:
    principal = request[principal_key]
    query = request.query
    where = ["tenant_id = {tenant:String}"]
    params: dict[str, Any] = {"tenant": principal.tenant.id}
    if query.get("project_id"):
        params["project"] = project_for_read(request.app[config_state], principal, query["project_id"]).id
        where.append("project_id = {project:String}")
    if "type" in query:
        if query["type"] not in ANOMALY_TYPES:
            raise bad_param("type", f"expected one of {', '.join(ANOMALY_TYPES)}")
        params["type"] = query["type"]
        where.append("type = {type:String}")
    if "severity" in query:
        if query["severity"] not in SEVERITIES:
            raise bad_param("severity", f"expected one of {', '.join(SEVERITIES)}")
        params["severity"] = query["severity"]
        where.append("severity = {severity:String}")
    start = get_time(query, "from")
    end = get_time(query, "to")
    if start is not None:
        params["from_ts"] = start
        where.append("window_start >= {from_ts:DateTime64(3)}")
    if end is not None:
        params["to_ts"] = end
        where.append("window_start < {to_ts:DateTime64(3)}")
    limit = get_int(query, "limit", minimum=1, maximum=200) or 50
    params["limit"] = limit
    ch = request.app[clickhouse_key]
    rows = await ch.query(
        f"SELECT {_COLUMNS} FROM {ch.database}.anomalies FINAL WHERE {' AND '.join(where)} "
        "ORDER BY window_start DESC, id LIMIT {limit:UInt32}",
        params,
    )
    return json_response({"anomalies": [anomaly_json(r) for r in rows]})


async def get_anomaly(request: web.Request) -> web.Response:
    principal = request[principal_key]
    ch = request.app[clickhouse_key]
    rows = await ch.query(
        f"SELECT {_COLUMNS} FROM {ch.database}.anomalies FINAL "
        "WHERE tenant_id = {tenant:String} AND id = {id:String} LIMIT 1",
        {"tenant": principal.tenant.id, "id": request.match_info["anomaly_id"]},
    )
    if not rows:
        raise not_found("Anomaly not found")
    return json_response(anomaly_json(rows[0]))


def add_alerts_read_routes(app: web.Application) -> None:
    app.router.add_get("/v1/anomalies", list_anomalies)
    app.router.add_get("/v1/anomalies/{anomaly_id}", get_anomaly)
