"""Dead letters, bounded (arroyo's ``dlq.py`` shape).

A record a consumer cannot use is produced to ``trulayer.dlq`` unchanged, with the error and
its origin in the headers of ``topics.dlq``, so a replay only has to produce the value back.
More than ``limit_per_minute`` dead letters in a minute means something is wrong upstream (a
bad deploy): :meth:`DeadLetterQueue.send` raises :class:`DeadLetterFloodError` instead of
quietly shovelling the whole stream into the DLQ, and the consumer stops.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter

from trulayer_common.logging import get_logger
from trulayer_common.topics import dlq

log = get_logger(__name__)
DEAD_LETTERS = Counter("trulayer_dead_letters_total", "records sent to the dead-letter topic", ["consumer"])


class DeadLetterFloodError(RuntimeError):
    """Too many dead letters per minute: stop consuming."""


class DeadLetterQueue:
    def __init__(self, producer: AIOKafkaProducer, limit_per_minute: int, consumer: str) -> None:
        self._producer = producer
        self._limit = limit_per_minute
        self._consumer = consumer
        self._recent: deque[float] = deque()

    async def send(self, record: ConsumerRecord[bytes, bytes], error: str) -> None:
        """Produce ``record`` to the DLQ and return once it is acknowledged (retrying while the
        broker is away), or raise :class:`DeadLetterFloodError`."""
        now = time.monotonic()
        while self._recent and now - self._recent[0] > 60.0:
            self._recent.popleft()
        if len(self._recent) >= self._limit:
            raise DeadLetterFloodError(f"more than {self._limit} dead letters in a minute; last error: {error}")
        self._recent.append(now)
        headers = dlq.encode_headers(dlq.DeadLetter(error, record.topic, record.partition, record.offset))
        attempt = 0
        while True:
            try:
                await self._producer.send_and_wait(dlq.TOPIC, value=record.value, key=record.key, headers=headers)
                break
            except KafkaError as exc:  # the broker is away: that is not the record's fault, wait
                attempt += 1
                delay = min(0.2 * 2**attempt, 10.0)
                log.error("dead_letter_send_failed", consumer=self._consumer, error=repr(exc), retry_in=delay)
                await asyncio.sleep(delay)
        DEAD_LETTERS.labels(self._consumer).inc()
        log.warning(
            "dead_letter",
            consumer=self._consumer,
            error=error[:500],
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )
