"""Stores ``trulayer.alerts`` in ClickHouse: alert events, webhook delivery attempts, anomalies.

A second, small consumer group next to the trace path (which it does not touch). Each record
is a JSON object whose ``kind`` names its table (see the alerter's ``events`` module); the
other fields are the table's columns. Same discipline as the trace worker: batch by size and
time, insert, *then* commit. Storage is keyed by ids, so redelivery is harmless. A record
that is not JSON or has an unknown kind is logged and skipped (it cannot be stored anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import OffsetAndMetadata, TopicPartition
from prometheus_client import Counter

from ingest_worker.settings import IngestWorkerSettings
from trulayer_common import topics
from trulayer_common.clickhouse import ClickHouse
from trulayer_common.kafka import create_consumer
from trulayer_common.logging import get_logger

log = get_logger(__name__)
TABLES = {"alert_event": "alert_events", "webhook_delivery": "webhook_deliveries", "anomaly": "anomalies"}
ALERT_ROWS = Counter("trulayer_alert_rows_written_total", "alerting rows inserted into ClickHouse", ["table"])
ALERT_SKIPPED = Counter("trulayer_alert_records_skipped_total", "alerting records that could not be stored")
_MAX_WAIT_MS = 200
_MAX_RECORDS = 5_000


def to_table_rows(value: bytes | None) -> tuple[str, dict[str, Any]] | None:
    """(table, row) for one record, or None when it cannot be stored."""
    try:
        record = orjson.loads(value) if value is not None else None
    except orjson.JSONDecodeError:
        return None
    if not isinstance(record, dict):
        return None
    table = TABLES.get(str(record.get("kind")))
    if table is None or not isinstance(record.get("id"), str):
        return None
    return table, {k: v for k, v in record.items() if k != "kind"}


class AlertsWriter:
    def __init__(self, settings: IngestWorkerSettings, clickhouse: ClickHouse) -> None:
        self.settings = settings
        self.clickhouse = clickhouse
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.running = False

    async def start(self) -> None:
        consumer = create_consumer(self.settings, topics.ALERTS, group_id=f"{self.settings.worker_group_id}-alerts")
        await consumer.start()
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(), name="alerts-writer")
        self.running = True

    async def _run(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        try:
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=_MAX_WAIT_MS, max_records=_MAX_RECORDS)
                if batches:
                    await self._write(batches)
        finally:
            self.running = False

    async def _write(self, batches: dict[TopicPartition, list[Any]]) -> None:
        rows: dict[str, list[dict[str, Any]]] = {}
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp, records in batches.items():
            for record in records:
                parsed = to_table_rows(record.value)
                if parsed is None:
                    ALERT_SKIPPED.inc()
                    log.error("alert_record_skipped", partition=tp.partition, offset=record.offset)
                else:
                    rows.setdefault(parsed[0], []).append(parsed[1])
            offsets[tp] = OffsetAndMetadata(records[-1].offset + 1, "")
        attempt = 0
        while True:
            try:
                for table, batch in rows.items():
                    await self.clickhouse.insert_json_rows(table, batch)
                    ALERT_ROWS.labels(table).inc(len(batch))
                break
            except Exception as exc:  # ClickHouse down: retry, never commit past unwritten rows
                attempt += 1
                delay = min(0.2 * 2**attempt, 10.0)
                log.error("alert_rows_write_failed", error=str(exc)[:500], attempt=attempt, retry_in=delay)
                await asyncio.sleep(delay)
        assert self._consumer is not None
        await self._consumer.commit(offsets)
        log.debug("alert_rows_written", rows=sum(len(b) for b in rows.values()), at=time.time())

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, timeout=5)
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        self.running = False
