"""Dead letters, bounded (arroyo's ``dlq.py`` shape).

A record that cannot be turned into rows is produced to ``trulayer.dlq`` unchanged, with the
error and its origin in headers, so a replay only has to produce the value back. More than
``limit`` dead letters in a minute means something is wrong upstream (a bad deploy): the
worker stops rather than quietly shovelling the whole stream into the DLQ.
"""

from __future__ import annotations

import time
from collections import deque

from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter

from trulayer_common import topics
from trulayer_common.logging import get_logger

log = get_logger(__name__)
DEAD_LETTERS = Counter("trulayer_ingest_dead_letters_total", "records sent to the dead-letter topic")


class DeadLetterFloodError(RuntimeError):
    """Too many dead letters per minute: stop consuming."""


class DeadLetterQueue:
    def __init__(self, producer: AIOKafkaProducer, limit_per_minute: int) -> None:
        self._producer = producer
        self._limit = limit_per_minute
        self._recent: deque[float] = deque()

    async def send(self, record: ConsumerRecord[bytes, bytes], error: str) -> None:
        now = time.monotonic()
        while self._recent and now - self._recent[0] > 60.0:
            self._recent.popleft()
        if len(self._recent) >= self._limit:
            raise DeadLetterFloodError(f"more than {self._limit} dead letters in a minute; last error: {error}")
        self._recent.append(now)
        headers = [
            ("error", error[:4000].encode()),
            ("source_topic", record.topic.encode()),
            ("source_partition", str(record.partition).encode()),
            ("source_offset", str(record.offset).encode()),
        ]
        await self._producer.send_and_wait(topics.DLQ, value=record.value, key=record.key, headers=headers)
        DEAD_LETTERS.inc()
        log.warning(
            "dead_letter",
            error=error[:500],
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )
