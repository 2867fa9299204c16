"""``trulayer.alerts``: what the alerter saw and did: rule firings, webhook delivery attempts,
anomalies. Written by the alerter, stored by the ingest-worker (one ClickHouse table per kind).

The payload is one record whose ``kind`` names it; its other fields are exactly the columns of
its table (:data:`TABLES`; an integration test compares them with ``DESCRIBE TABLE``):

* ``alert_event`` → ``alert_events``: one per rule firing. Written again with a higher
  ``version`` once a webhook answered 2xx (``notification_sent`` true); the table keeps the
  highest version. Its id derives from rule, project and firing time, so a replay replaces.
* ``webhook_delivery`` → ``webhook_deliveries``: one per delivery attempt with its outcome.
* ``anomaly`` → ``anomalies``: one per detected anomaly (id from project, type and bucket).

Key: the tenant id. Version 2 wraps the record in the common envelope; version 1 (before the
envelope) was the bare record ``{"kind", ...columns}`` and is still read: :func:`decode`
returns it as an envelope whose ``received_at`` is the record's own time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

from trulayer_common.topics import ALERTS
from trulayer_common.topics.envelope import Envelope, InvalidRecordError, Timestamp, validation_reason

TOPIC = ALERTS
SCHEMA_VERSION = 2
_RECORD = ConfigDict(extra="ignore")


@with_config(_RECORD)
class AlertEvent(TypedDict):
    """A rule fired (``alert_events``)."""

    kind: Literal["alert_event"]
    id: str
    tenant_id: str
    project_id: str
    rule_id: str
    rule_name: str
    metric: str
    metric_name: str
    operator: str
    threshold_value: float
    metric_value: float
    window_secs: int
    severity: str
    model: str
    triggered_at: Timestamp
    notification_sent: bool
    version: int
    created_at: Timestamp


@with_config(_RECORD)
class WebhookDelivery(TypedDict):
    """One delivery attempt of an event to one webhook (``webhook_deliveries``)."""

    kind: Literal["webhook_delivery"]
    tenant_id: str
    webhook_id: str
    alert_event_id: str
    id: str
    url: str
    attempt: int
    status_code: int
    outcome: Literal["delivered", "retrying", "failed"]
    error: str
    duration_ms: float
    attempted_at: Timestamp


@with_config(_RECORD)
class Anomaly(TypedDict):
    """A metric far from its learned baseline (``anomalies``)."""

    kind: Literal["anomaly"]
    id: str
    tenant_id: str
    project_id: str
    type: str
    metric: str
    severity: str
    observed_value: float
    baseline_mean: float
    baseline_std: float
    z_score: float
    window_start: Timestamp
    window_end: Timestamp
    detected_at: Timestamp


AlertRecord = Annotated[AlertEvent | WebhookDelivery | Anomaly, Field(discriminator="kind")]
AlertEnvelope = Envelope[AlertRecord]
RECORD: TypeAdapter[AlertEvent | WebhookDelivery | Anomaly] = TypeAdapter(AlertRecord)
TABLES: dict[str, str] = {
    "alert_event": "alert_events",
    "webhook_delivery": "webhook_deliveries",
    "anomaly": "anomalies",
}
RECORD_TYPES: dict[str, type[Any]] = {
    "alert_event": AlertEvent,
    "webhook_delivery": WebhookDelivery,
    "anomaly": Anomaly,
}
_OWN_TIME = {"alert_event": "triggered_at", "webhook_delivery": "attempted_at", "anomaly": "detected_at"}


def key(record: AlertEvent | WebhookDelivery | Anomaly) -> bytes:
    return record["tenant_id"].encode()


def encode(record: AlertEvent | WebhookDelivery | Anomaly, received_at: datetime | None = None) -> bytes:
    """The record value: ``record`` in the envelope (not validated here: its type is checked by
    mypy where it is built, and every reader validates)."""
    envelope = {
        "schema_version": SCHEMA_VERSION,
        "tenant_id": record["tenant_id"],
        "project_id": record.get("project_id", ""),
        "received_at": received_at or datetime.now(UTC),
        "request_id": "",
        "payload": record,
    }
    return orjson.dumps(envelope, option=orjson.OPT_UTC_Z)


def decode(value: bytes | None) -> AlertEnvelope:
    """The validated envelope (version 1 records too); :class:`InvalidRecordError` otherwise."""
    if value is None:
        raise InvalidRecordError(f"{TOPIC}: empty record")
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise InvalidRecordError(f"{TOPIC}: not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRecordError(f"{TOPIC}: not an object")
    try:
        if "schema_version" not in data and "kind" in data:  # version 1: the bare record
            record = RECORD.validate_python(data)
            own_time = record[_OWN_TIME[record["kind"]]]  # type: ignore[literal-required]
            return AlertEnvelope(
                schema_version=1,
                tenant_id=record["tenant_id"],
                project_id=record.get("project_id", ""),
                received_at=own_time,
                payload=record,
            )
        envelope = AlertEnvelope.model_validate(data)
    except ValidationError as exc:
        raise InvalidRecordError(f"{TOPIC}: not a valid record: {validation_reason(exc)}") from None
    if envelope.schema_version > SCHEMA_VERSION:
        raise InvalidRecordError(f"{TOPIC}: schema_version {envelope.schema_version} is newer than {SCHEMA_VERSION}")
    return envelope


def table_row(record: AlertEvent | WebhookDelivery | Anomaly) -> tuple[str, dict[str, Any]]:
    """``(table, row)``: where the record is stored and its columns (every field but ``kind``)."""
    return TABLES[record["kind"]], {k: v for k, v in record.items() if k != "kind"}
