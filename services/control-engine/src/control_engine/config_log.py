"""The single writer of ``trulayer.config``: appends entity states and waits for the ack."""

from __future__ import annotations

from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from trulayer_common.config import ConfigRecord
from trulayer_common.config.control_entities import ControlEntity
from trulayer_common.config.entities import AlertRule, ApiKey, EvalRule, Project, Tenant, Webhook
from trulayer_common.topics import config as config_records


class ConfigLogWriter:
    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer

    async def append(
        self, entity: Tenant | Project | ApiKey | AlertRule | Webhook | EvalRule | ControlEntity, actor: str = "system"
    ) -> ConfigRecord:
        """Write the entity's full state; returns once the broker acknowledged (acks=all)."""
        record = ConfigRecord(entity=entity, actor=actor, at=datetime.now(UTC))
        await self._producer.send_and_wait(
            config_records.TOPIC, value=config_records.encode(record), key=config_records.key(record)
        )
        return record
