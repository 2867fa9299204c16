"""Every read of alerting: rules with their recent events, and anomalies (API.md "Alerts").

The one home of alerting reads. Rules come from this replica's materialised config log, read
after catching up with the log (:meth:`ConfigLogReader.sync`), so a caller reads its own
writes made through the control-engine; alert events and anomalies come from ClickHouse.
Writes of rules and webhooks are forwarded to the control-engine, which owns configuration.

* ``GET /v1/alerts`` (and ``/v1/failure-rules``): ``{rules, recent_events}``, the tenant's
  rules oldest first and its 50 most recent alert events.
* ``GET /v1/alerts/{rule_id}``: one rule.
* ``GET /v1/anomalies`` (filters ``project_id``, ``type``, ``severity``, ``from``/``to`` on the
  window start, ``limit`` ≤ 200, newest first) and ``GET /v1/anomalies/{anomaly_id}``.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from aiohttp import web

from gateway.auth import project_for_read
from gateway.params import bad_param, get_int, get_time
from gateway.resources import clickhouse_key, config_reader_key, config_state, principal_key, settings_key
from trulayer_common.errors import forbidden, not_found, unavailable
from trulayer_common.http import json_response
from trulayer_common.routing import path_param
from trulayer_common.schemas.control import alert_rule_json

ANOMALY_TYPES = ("latency_spike", "error_rate_spike", "volume_anomaly")
SEVERITIES = ("low", "medium", "high", "critical")
RECENT_EVENTS = 50
_ANOMALY_COLUMNS = (
    "id, project_id, type, metric, severity, observed_value, baseline_mean, baseline_std, z_score, "
    "window_start, window_end, detected_at"
)


async def _caught_up(request: web.Request) -> None:
    try:
        await request.app[config_reader_key].sync(request.app[settings_key].config_sync_timeout_seconds)
    except TimeoutError as exc:
        raise unavailable("Configuration log is not reachable; retry", 2) from exc


async def _recent_events(request: web.Request, tenant_id: str) -> list[dict[str, Any]]:
    ch = request.app[clickhouse_key]
    rows = await ch.query(
        "SELECT id, rule_id, project_id, metric, operator, threshold_value, metric_value, severity, model, "
        f"triggered_at, notification_sent FROM {ch.database}.alert_events FINAL "
        "WHERE tenant_id = {t:String} ORDER BY triggered_at DESC, id LIMIT {n:UInt32}",
        {"t": tenant_id, "n": RECENT_EVENTS},
    )
    return [
        {
            **row,
            "triggered_at": row["triggered_at"].replace(tzinfo=UTC).isoformat(),
            "notification_sent": bool(row["notification_sent"]),
            "model": row["model"] or None,
        }
        for row in rows
    ]


async def list_rules(request: web.Request) -> web.Response:
    tenant_id = request[principal_key].tenant.id
    await _caught_up(request)
    rules = sorted(request.app[config_state].alert_rules_of(tenant_id), key=lambda r: (r.created_at, r.id))
    events = await _recent_events(request, tenant_id)
    return json_response({"rules": [alert_rule_json(r) for r in rules], "recent_events": events})


async def get_rule(request: web.Request) -> web.Response:
    tenant_id = request[principal_key].tenant.id
    rule_id = path_param(request, "rule_id")
    await _caught_up(request)
    rule = request.app[config_state].alert_rules.get(rule_id)
    if rule is None:
        raise not_found(f"Alert rule '{rule_id}' not found")
    if rule.tenant_id != tenant_id:
        raise forbidden("Alert rule belongs to another tenant")
    return json_response(alert_rule_json(rule))


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
        f"SELECT {_ANOMALY_COLUMNS} FROM {ch.database}.anomalies FINAL WHERE {' AND '.join(where)} "
        "ORDER BY window_start DESC, id LIMIT {limit:UInt32}",
        params,
    )
    return json_response({"anomalies": [anomaly_json(r) for r in rows]})


async def get_anomaly(request: web.Request) -> web.Response:
    principal = request[principal_key]
    ch = request.app[clickhouse_key]
    rows = await ch.query(
        f"SELECT {_ANOMALY_COLUMNS} FROM {ch.database}.anomalies FINAL "
        "WHERE tenant_id = {tenant:String} AND id = {id:String} LIMIT 1",
        {"tenant": principal.tenant.id, "id": path_param(request, "anomaly_id")},
    )
    if not rows:
        raise not_found("Anomaly not found")
    return json_response(anomaly_json(rows[0]))
