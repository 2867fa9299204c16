"""Writes the alerter's records to ``trulayer.alerts`` and turns outcomes into deliveries."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer

from alerter.evaluator import Outcome
from alerter.events import ALERT_EVENT, ANOMALY_EVENT, delivered, webhook_body
from alerter.webhooks import Attempt, WebhookDispatcher
from trulayer_common.config import ConfigState
from trulayer_common.logging import get_logger
from trulayer_common.topics import alerts

log = get_logger(__name__)


class AlertPublisher:
    """Alert events and anomalies are acknowledged by the broker before webhooks are queued."""

    def __init__(self, producer: AIOKafkaProducer, config: ConfigState) -> None:
        self._producer = producer
        self._config = config
        self.dispatcher: WebhookDispatcher | None = None

    async def _send(self, record: alerts.AlertEvent | alerts.WebhookDelivery | alerts.Anomaly) -> None:
        await self._producer.send_and_wait(alerts.TOPIC, value=alerts.encode(record), key=alerts.key(record))

    async def publish(self, outcome: Outcome) -> None:
        assert self.dispatcher is not None
        for alert in outcome.alerts:
            await self._send(alert)
            log.info(
                "alert_fired", rule_id=alert["rule_id"], project_id=alert["project_id"], value=alert["metric_value"]
            )
            hooks = self._config.webhooks_of(alert["tenant_id"])
            self.dispatcher.submit(alert["tenant_id"], ALERT_EVENT, webhook_body(ALERT_EVENT, alert), hooks)
        for anomaly in outcome.anomalies:
            await self._send(anomaly)
            log.info("anomaly_detected", type=anomaly["type"], project_id=anomaly["project_id"], z=anomaly["z_score"])
            hooks = self._config.webhooks_of(anomaly["tenant_id"])
            self.dispatcher.submit(anomaly["tenant_id"], ANOMALY_EVENT, webhook_body(ANOMALY_EVENT, anomaly), hooks)

    async def record_attempt(self, attempt: Attempt) -> None:
        await self._send(attempt.record())

    async def mark_delivered(self, body: dict[str, Any]) -> None:
        """The first 2xx of an alert event: write it again with ``notification_sent`` true."""
        if body.get("event") != ALERT_EVENT:
            return  # anomalies carry no notification flag
        await self._send(delivered(body["data"]))
