"""The consume → transform → insert → commit loop.

* Batches by size (``batch_max_traces``) and time (``batch_max_wait_ms``).
* Inserts traces, spans, events, *then* commits offset+1 of the last record of each
  partition in the batch. A crash between insert and commit redelivers the batch, whose rows
  have the same keys (ReplacingMergeTree), so nothing is stored twice as far as reads go.
* A failed insert is retried with backoff and never committed past. When the engine is up and
  refuses the batch's *data* (a parse or type error, :mod:`ingest_worker.refusals`), the fault
  is in a record: the batch is written record by record and the records the engine refuses go
  to the dead-letter topic (a poison record must not stall the partition forever). Any other
  refusal (disk, read-only table, memory) is retried until the engine takes the batch.
* On partition revocation the pending batch is written and committed first.
* :meth:`stop` (SIGTERM) finishes the batch, writes, commits and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata
from prometheus_client import Counter, Gauge, Histogram

from ingest_worker.dead_letters import DeadLetterQueue
from ingest_worker.refusals import is_data_error
from ingest_worker.rows import INSERT_SETTINGS, InvalidRecordError, Rows, to_rows
from ingest_worker.settings import IngestWorkerSettings
from trulayer_common import topics
from trulayer_common.clickhouse import ClickHouse
from trulayer_common.kafka import create_consumer, create_producer
from trulayer_common.logging import get_logger

log = get_logger(__name__)
ROWS_WRITTEN = Counter("trulayer_ingest_rows_written_total", "rows inserted into ClickHouse", ["table"])
BATCH_SECONDS = Histogram(
    "trulayer_ingest_batch_write_seconds",
    "time to insert one batch",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
)
WRITE_RETRIES = Counter("trulayer_ingest_write_retries_total", "failed inserts retried")
CONSUMER_LAG = Gauge("trulayer_ingest_consumer_lag", "records behind the high watermark, all partitions")


def _merge(batch: list[tuple[ConsumerRecord[bytes, bytes], Rows]]) -> Rows:
    merged = Rows()
    for _, rows in batch:
        merged.extend(rows)
    return merged


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: IngestWorker) -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._worker.flush()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("partitions_assigned", partitions=sorted(tp.partition for tp in assigned))


class IngestWorker:
    def __init__(self, settings: IngestWorkerSettings, clickhouse: ClickHouse) -> None:
        self.settings = settings
        self.clickhouse = clickhouse
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._dlq: DeadLetterQueue | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._lock = asyncio.Lock()
        self._pending: list[tuple[ConsumerRecord[bytes, bytes], Rows]] = []
        self._pending_traces = 0
        self._offsets: dict[TopicPartition, int] = {}
        self._first_pending_at: float | None = None
        self.running = False

    @property
    def pending_traces(self) -> int:
        """Traces read but not yet written (what a clean stop still has to write)."""
        return self._pending_traces

    async def start(self) -> None:
        settings = self.settings
        self._producer = create_producer(settings, client_id=f"{settings.service_name}-dlq")
        await self._producer.start()
        self._dlq = DeadLetterQueue(self._producer, settings.dlq_max_per_minute)
        consumer = create_consumer(settings, group_id=settings.worker_group_id)
        consumer.subscribe([topics.TRACES], listener=_Rebalance(self))
        await consumer.start()
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(), name="ingest-worker")
        self.running = True

    async def _run(self) -> None:
        assert self._consumer is not None and self._dlq is not None
        consumer = self._consumer
        try:
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=50, max_records=2_000)
                for tp, records in batches.items():
                    for record in records:
                        try:
                            rows = to_rows(record.value, self.settings.default_retention_days)
                            self._pending.append((record, rows))
                            self._pending_traces += len(rows)
                        except InvalidRecordError as exc:
                            await self._dlq.send(record, str(exc))
                        self._offsets[tp] = record.offset + 1
                        if self._first_pending_at is None:
                            self._first_pending_at = time.monotonic()
                        # One record is ~1 ms of work: let the loop's other tasks (the gateway's
                        # requests in the local stack) in between, not after a whole fetch.
                        await asyncio.sleep(0)
                if self._due():
                    await self.flush()
                self._update_lag(consumer)
            await self.flush()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("ingest_worker_failed")
            raise
        finally:
            self.running = False

    def _due(self) -> bool:
        if self._first_pending_at is None:
            return False
        if self._pending_traces >= self.settings.batch_max_traces:
            return True
        return (time.monotonic() - self._first_pending_at) * 1000 >= self.settings.batch_max_wait_ms

    def _update_lag(self, consumer: AIOKafkaConsumer) -> None:
        lag = 0
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            last = consumer.last_stable_offset(tp) if high is None else high
            position = self._offsets.get(tp)
            if last is not None and position is not None:
                lag += max(last - position, 0)
        CONSUMER_LAG.set(lag)

    async def flush(self) -> None:
        """Write what is pending, then commit; retried until it succeeds or the task is cancelled."""
        async with self._lock:
            if not self._offsets:
                return
            batch, offsets = self._pending, dict(self._offsets)
            attempt = 0
            while True:
                try:
                    started = time.perf_counter()
                    await self._write(_merge(batch))
                    BATCH_SECONDS.observe(time.perf_counter() - started)
                    break
                except Exception as exc:
                    attempt += 1
                    WRITE_RETRIES.inc()
                    # Isolate records only when the engine refused the *data* (ingest_worker.refusals);
                    # a table or disk that refuses every insert is waited out, never dead-lettered.
                    if attempt >= 3 and is_data_error(exc) and await self.clickhouse.ping():
                        log.error("batch_refused_isolating_records", error=str(exc)[:500], records=len(batch))
                        try:
                            await self._write_record_by_record(batch)
                            break
                        except Exception as isolating:
                            exc = isolating
                    delay = min(0.2 * 2**attempt, 10.0)
                    log.error("batch_write_failed", error=str(exc)[:500], attempt=attempt, retry_in=delay)
                    await asyncio.sleep(delay)
            assert self._consumer is not None
            await self._consumer.commit({tp: OffsetAndMetadata(off, "") for tp, off in offsets.items()})
            log.debug("batch_written", records=len(batch), traces=self._pending_traces)
            self._pending, self._pending_traces, self._offsets = [], 0, {}
            self._first_pending_at = None

    async def _write(self, rows: Rows) -> None:
        for table, batch in (("traces", rows.traces), ("spans", rows.spans), ("events", rows.events)):
            if batch:
                await self.clickhouse.insert_json_rows(table, batch, INSERT_SETTINGS)
                ROWS_WRITTEN.labels(table).inc(len(batch))

    async def _write_record_by_record(self, batch: list[tuple[ConsumerRecord[bytes, bytes], Rows]]) -> None:
        """Rewriting rows already written is harmless: storage is keyed by ids. A record whose
        data the engine refuses goes to the dead-letter topic; any other failure is raised (the
        engine is in trouble: the caller retries the whole batch)."""
        assert self._dlq is not None
        for record, rows in batch:
            try:
                await self._write(rows)
            except Exception as exc:
                if not is_data_error(exc):
                    raise
                await self._dlq.send(record, f"refused by ClickHouse: {exc}"[:4000])

    async def stop(self) -> None:
        """Clean shutdown: finish the batch, write, commit, leave the group."""
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._close()

    async def abort(self) -> None:
        """Stop *without* writing or committing the pending batch: what a crash looks like."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._pending, self._pending_traces, self._offsets = [], 0, {}
        await self._close()

    async def _close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        self.running = False
