"""One batching consumer loop: poll → transform → batch → write → commit (arroyo/snuba shape).

A writer is a topic, a consumer group, a pure ``transform(record) -> item | None`` (None: nothing
to write for that record; its offset is still committed) and a :class:`Sink`
(``clickhouse.table_sink.TableSink`` for tables). The loop guarantees:

* **Batching** by size (``Sink.size`` of the pending items, ``BatchPolicy.max_size``, checked
  after every record) and time (``max_wait_ms`` after the first pending record, checked after
  every fetch).
* **Commit after write**: offset+1 of each partition's last record is committed only once the
  batch is written. A crash in between redelivers the batch; storage is keyed by ids.
* **Bounded retries**: a failed write is retried with exponential backoff (capped). While the
  store does not answer, or refuses every write for its own reasons (disk, read-only table:
  ``Sink.refuses_record`` is False), the loop keeps retrying and never commits past unwritten
  records; when it answers and still refuses the batch's *data* ``refused_attempts`` times,
  the fault is in a record: the batch is written record by record and the records whose data
  is refused are dead-lettered.
* **Dead letters, bounded**: a record the transform refuses (``InvalidRecordError``) or the
  store refuses goes to ``trulayer.dlq`` with the error; more than ``dlq_max_per_minute`` is a
  flood (a bad deploy) and stops the loop (:class:`~trulayer_common.dead_letters.DeadLetterFloodError`).
* **Rebalances**: when partitions are revoked the pending batch is written and committed while
  they are still ours, and the records of the current fetch that were not taken yet are
  dropped (whoever owns their partitions next reads them again from the committed offset).
  Only offsets of partitions currently assigned are ever committed.
* **Shutdown** (:meth:`BatchingConsumer.stop`) finishes the fetch, writes, commits and leaves.
* **Liveness**: a loop that ended with an error (a flood, an unexpected exception) makes
  :meth:`BatchingConsumer.liveness` report it, so ``/healthz`` answers 503 and the process is
  restarted. Only :class:`~trulayer_common.topics.InvalidRecordError` from the transform is
  treated as a poison record; any other exception is a bug and stops the loop loudly.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeAlias, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata
from prometheus_client import Counter, Gauge, Histogram

from trulayer_common.dead_letters import DeadLetterQueue
from trulayer_common.health import LivenessCheck, task_liveness
from trulayer_common.kafka import create_consumer, create_producer
from trulayer_common.logging import get_logger
from trulayer_common.settings import ServiceSettings
from trulayer_common.topics import InvalidRecordError

log = get_logger(__name__)
T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)
Record: TypeAlias = "ConsumerRecord[bytes, bytes]"

BATCH_SECONDS = Histogram(
    "trulayer_consumer_batch_write_seconds",
    "time to write one batch",
    ["consumer"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
)
WRITE_RETRIES = Counter("trulayer_consumer_write_retries_total", "failed batch writes retried", ["consumer"])
REVOKED_DROPPED = Counter(
    "trulayer_consumer_revoked_records_dropped_total",
    "fetched records not taken because their partitions were revoked meanwhile",
    ["consumer"],
)
LAG = Gauge("trulayer_consumer_lag", "records behind the high watermark, all assigned partitions", ["consumer"])


class Sink(Protocol[T_contra]):
    """Where a loop writes its items."""

    name: str

    def size(self, item: T_contra) -> int:
        """How much ``item`` counts toward ``BatchPolicy.max_size``."""

    async def write(self, items: Sequence[T_contra]) -> None:
        """Write every item or raise; writing the same items again must be harmless."""

    async def available(self) -> bool:
        """Whether the store answers."""

    def refuses_record(self, error: Exception) -> bool:
        """Whether ``error`` says the store refused the records' *data* (their fault: dead-letter
        them) rather than being in trouble itself (full or read-only disk, memory: retry)."""


@dataclass(frozen=True)
class BatchPolicy:
    max_size: int = 10_000
    max_wait_ms: int = 400
    dlq_max_per_minute: int = 1_000
    refused_attempts: int = 3
    max_backoff_seconds: float = 10.0
    poll_records: int = 2_000
    poll_timeout_ms: int = 50
    # Where a consumer group with no committed offset starts: "earliest" (a writer must store
    # everything) or "latest" (a processor of new records only, e.g. the eval rules).
    auto_offset_reset: str = "earliest"


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: BatchingConsumer[Any]) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._loop.partitions_revoked()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._loop.partitions_assigned(assigned)


class BatchingConsumer(Generic[T]):
    """One consumer group member writing one topic through ``transform`` and ``sink``."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        name: str,
        topic: str,
        group_id: str,
        transform: Callable[[Record], T | None],
        sink: Sink[T],
        policy: BatchPolicy,
    ) -> None:
        self.settings = settings
        self.name = name
        self.topic = topic
        self.group_id = group_id
        self._transform = transform
        self._sink = sink
        self.policy = policy
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._dead_letters: DeadLetterQueue | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._lock = asyncio.Lock()
        self._pending: list[tuple[Record, T]] = []
        self._pending_size = 0
        self._offsets: dict[TopicPartition, int] = {}  # next offset to commit, per partition
        self._positions: dict[TopicPartition, int] = {}  # next offset to take (lag)
        self._first_pending_at: float | None = None
        # Bumped on every revocation: the records of a fetch made before it are not ours to take.
        self._epoch = 0
        self._failure: BaseException | None = None

    @property
    def pending(self) -> int:
        """Size of what was read but not written yet (what a clean stop still has to write)."""
        return self._pending_size

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    def liveness(self) -> LivenessCheck:
        """Dead once the loop ended with an error (see the module docstring)."""
        return task_liveness(lambda: self._task)

    async def start(self) -> None:
        self._producer = create_producer(self.settings, client_id=f"{self.settings.service_name}-{self.name}-dlq")
        await self._producer.start()
        self._dead_letters = DeadLetterQueue(self._producer, self.policy.dlq_max_per_minute, self.name)
        consumer = create_consumer(
            self.settings,
            group_id=self.group_id,
            client_id=f"{self.settings.service_name}-{self.name}",
            auto_offset_reset=self.policy.auto_offset_reset,
        )
        consumer.subscribe([self.topic], listener=_Rebalance(self))
        await consumer.start()
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(), name=f"consumer-{self.name}")

    async def _run(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        try:
            while not self._stopping.is_set():
                self._raise_failure()
                fetched = await consumer.getmany(
                    timeout_ms=self.policy.poll_timeout_ms, max_records=self.policy.poll_records
                )
                # getmany returns records of the current assignment only (it waits out a
                # rebalance); a revocation after this point makes the rest of them stale.
                epoch = self._epoch
                for tp, records in fetched.items():
                    if not await self._take_all(tp, records, epoch):
                        break
                if self._due():
                    await self.flush()
                self._update_lag(consumer)
            self._raise_failure()
            await self.flush()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("consumer_failed", consumer=self.name, topic=self.topic)
            raise

    async def _take_all(self, tp: TopicPartition, records: list[Record], epoch: int) -> bool:
        """Take the records of one partition; False once they were revoked meanwhile."""
        for index, record in enumerate(records):
            if self._epoch != epoch:
                REVOKED_DROPPED.labels(self.name).inc(len(records) - index)
                return False
            item: T | None = None
            try:
                item = self._transform(record)
            except InvalidRecordError as exc:
                assert self._dead_letters is not None
                await self._dead_letters.send(record, str(exc))
                if self._epoch != epoch:  # revoked while sending: the next owner re-reads it
                    REVOKED_DROPPED.labels(self.name).inc(len(records) - index)
                    return False
            if item is not None:
                self._pending.append((record, item))
                self._pending_size += self._sink.size(item)
            self._offsets[tp] = self._positions[tp] = record.offset + 1
            if self._first_pending_at is None:
                self._first_pending_at = time.monotonic()
            if self._pending_size >= self.policy.max_size:  # a backlog's fetch can be far larger
                await self.flush()
            # One record can be ~1 ms of work: let the loop's other tasks (the gateway's requests
            # in the local stack) in between, not after a whole fetch.
            await asyncio.sleep(0)
        return True

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _due(self) -> bool:
        if self._first_pending_at is None:
            return False
        if self._pending_size >= self.policy.max_size:
            return True
        return (time.monotonic() - self._first_pending_at) * 1000 >= self.policy.max_wait_ms

    def _update_lag(self, consumer: AIOKafkaConsumer) -> None:
        lag = 0
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            position = self._positions.get(tp)
            if high is not None and position is not None:
                lag += max(high - position, 0)
        LAG.labels(self.name).set(lag)

    async def partitions_revoked(self) -> None:
        """Before a rebalance: stop taking the current fetch, write and commit what is pending
        while the partitions are still ours. A failure here (aiokafka would only log it) is
        kept and re-raised by the loop."""
        self._epoch += 1
        try:
            await self.flush()
        except Exception as exc:
            log.exception("consumer_flush_on_revoke_failed", consumer=self.name)
            self._failure = exc
        self._positions.clear()

    def partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("partitions_assigned", consumer=self.name, partitions=sorted(tp.partition for tp in assigned))

    async def flush(self) -> None:
        """Write what is pending, then commit it. The pending state is taken at once, so records
        taken meanwhile belong to the next batch."""
        async with self._lock:
            if not self._offsets:
                return
            batch, offsets = self._pending, self._offsets
            self._pending, self._offsets, self._pending_size, self._first_pending_at = [], {}, 0, None
            if batch:
                await self._write(batch)
            await self._commit(offsets)

    async def _write(self, batch: list[tuple[Record, T]]) -> None:
        attempt = 0
        while True:
            try:
                started = time.perf_counter()
                await self._sink.write([item for _, item in batch])
                BATCH_SECONDS.labels(self.name).observe(time.perf_counter() - started)
                return
            except Exception as exc:
                attempt += 1
                WRITE_RETRIES.labels(self.name).inc()
                # Only a refusal of the data isolates records: a store that refuses every write
                # (e.g. a table that cannot create parts) is waited out, never dead-lettered.
                refused = self._sink.refuses_record(exc)
                if attempt >= self.policy.refused_attempts and refused and await self._sink.available():
                    log.error(
                        "batch_refused_isolating_records", consumer=self.name, error=str(exc)[:500], records=len(batch)
                    )
                    await self._isolate(batch)
                    return
                delay = self._backoff(attempt)
                log.error(
                    "batch_write_failed", consumer=self.name, error=str(exc)[:500], attempt=attempt, retry_in=delay
                )
                await asyncio.sleep(delay)

    async def _isolate(self, batch: list[tuple[Record, T]]) -> None:
        """Write record by record; dead-letter those the store refuses while it answers."""
        assert self._dead_letters is not None
        for record, item in batch:
            attempt = 0
            while True:
                try:
                    await self._sink.write([item])
                    break
                except Exception as exc:
                    if self._sink.refuses_record(exc) and await self._sink.available():
                        await self._dead_letters.send(record, f"refused by {self._sink.name}: {exc}")
                        break
                    attempt += 1  # the store is in trouble (or went away): this record is not the fault
                    await asyncio.sleep(self._backoff(attempt))

    def _backoff(self, attempt: int) -> float:
        return float(min(0.2 * 2**attempt, self.policy.max_backoff_seconds))

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        assigned = self._consumer.assignment()
        ours = {tp: OffsetAndMetadata(offset, "") for tp, offset in offsets.items() if tp in assigned}
        if len(ours) < len(offsets):
            log.warning("commit_skipped_unassigned", consumer=self.name, partitions=len(offsets) - len(ours))
        if not ours:
            return
        try:
            await self._consumer.commit(ours)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group moved on without us (the rows are written; the next owner rewrites them).
            log.warning("commit_failed_rebalanced", consumer=self.name, error=str(exc)[:300])

    async def stop(self) -> None:
        """Clean shutdown: finish the fetch, write, commit, leave the group."""
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
        self._pending, self._offsets, self._pending_size, self._first_pending_at = [], {}, 0, None
        await self._close()

    async def _close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
