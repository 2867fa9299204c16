"""The alerter's ``trulayer.alerts`` records (typed by ``trulayer_common.topics.alerts``, which
also encodes them; the ingest-worker stores them through the same module).

Ids are derived, not random: an alert event's from rule, project and firing time, an anomaly's
from project, type and bucket, so a replayed firing replaces its record instead of adding one.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from alerter.anomalies import AnomalyVerdict
from trulayer_common.config.entities import AlertRule
from trulayer_common.topics import alerts

_NAMESPACE = uuid.UUID("6f1c2a4e-55d2-4f7e-9a44-0c7b1d1d7a10")
ALERT_EVENT = "failure.detected"
ANOMALY_EVENT = "anomaly.detected"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def version_now() -> int:
    return time.time_ns() // 1000


def alert_event(rule: AlertRule, project_id: str, value: float, fired_at: float) -> alerts.AlertEvent:
    event_id = str(uuid.uuid5(_NAMESPACE, f"alert|{rule.id}|{project_id}|{fired_at:.3f}"))
    return alerts.AlertEvent(
        kind="alert_event",
        id=event_id,
        tenant_id=rule.tenant_id,
        project_id=project_id,
        rule_id=rule.id,
        rule_name=rule.name,
        metric=rule.metric,
        metric_name=rule.metric_name or "",
        operator=rule.operator,
        threshold_value=rule.threshold,
        metric_value=value,
        window_secs=rule.window_secs,
        severity=rule.severity,
        model=rule.model or "",
        triggered_at=iso(fired_at),
        notification_sent=False,
        version=version_now(),
        created_at=iso(time.time()),
    )


def delivered(data: dict[str, Any]) -> alerts.AlertEvent:
    """The alert event of a webhook body's ``data``, written again once a receiver answered 2xx."""
    record = {**data, "kind": "alert_event", "notification_sent": True, "version": version_now()}
    event: alerts.AlertEvent = alerts.RECORD.validate_python(record)  # type: ignore[assignment]
    return event


def anomaly_event(
    tenant_id: str, project_id: str, verdict: AnomalyVerdict, window_start: float, window_end: float
) -> alerts.Anomaly:
    anomaly_id = str(uuid.uuid5(_NAMESPACE, f"anomaly|{tenant_id}|{project_id}|{verdict.type}|{window_start}"))
    return alerts.Anomaly(
        kind="anomaly",
        id=anomaly_id,
        tenant_id=tenant_id,
        project_id=project_id,
        type=verdict.type,
        metric=verdict.metric,
        severity=verdict.severity,
        observed_value=verdict.observed,
        baseline_mean=verdict.mean,
        baseline_std=verdict.std,
        z_score=verdict.z_score,
        window_start=iso(window_start),
        window_end=iso(window_end),
        detected_at=iso(time.time()),
    )


def webhook_body(event_name: str, record: alerts.AlertEvent | alerts.Anomaly) -> dict[str, Any]:
    """The JSON a receiver gets: the event name, its id, and the event's fields."""
    data = {k: v for k, v in record.items() if k not in ("kind", "version")}
    return {"event": event_name, "id": record["id"], "created_at": iso(time.time()), "data": data}
