"""The consumer of ``trulayer.eval.requests``: holds, schedules and runs evaluations, and commits
only what is durable.

* **Scheduling**: a request whose ``not_before`` is ahead waits in a timer heap; due requests
  wait in a :class:`FairQueue` (per-tenant and global concurrency). A tenant with more than
  ``EVAL_TENANT_MAX_QUEUED`` due requests has the excess re-enqueued ``EVAL_DEFER_SECONDS``
  later, so one tenant's flood does not fill this replica's memory ahead of the others.
* **Commits**: evaluations finish out of order; each partition commits its lowest unfinished
  offset (:class:`OffsetTracker`), once a second. An evaluation counts as finished when its
  states (and any re-enqueued request) are acknowledged by the broker, so a restart mid-flight
  re-reads every request not finished; a Redis mark per ``(eval_id, attempt)`` keeps one that
  finished from running (and paying a judge) twice.
* **Bounds**: more than ``EVAL_MAX_HELD`` requests held (waiting, queued or running) pauses the
  fetch until some finish.
* **Failures**: a request that cannot be decoded is dead-lettered; a publish that fails (broker
  down) is retried after :data:`RETRY_SECONDS`; a loop that dies turns ``/healthz`` red.
* **Rebalances**: held requests of revoked partitions are dropped (their next owner reads them
  from the committed offset); running ones get :data:`REVOKE_GRACE_SECONDS` to finish, then
  are cancelled; what finished is committed while the partitions are still ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata
from prometheus_client import Gauge

from eval_engine.evaluation_job import EvaluationRunner, Job
from eval_engine.fair_queue import FairQueue
from eval_engine.offsets import OffsetTracker
from eval_engine.results import Publisher
from eval_engine.settings import EvalEngineSettings
from trulayer_common.dead_letters import DeadLetterQueue
from trulayer_common.health import LivenessCheck, task_liveness
from trulayer_common.kafka import create_consumer, create_producer
from trulayer_common.logging import get_logger
from trulayer_common.topics import InvalidRecordError, eval_requests

log = get_logger(__name__)
HELD = Gauge("trulayer_eval_engine_requests_held", "eval requests held: waiting, queued or running")
RETRY_SECONDS = 5.0
REVOKE_GRACE_SECONDS = 10.0
COMMIT_EVERY_SECONDS = 1.0
STOP_GRACE_SECONDS = 10.0


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: RequestLoop) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._loop.partitions_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("eval_requests_assigned", partitions=sorted(tp.partition for tp in assigned))


class RequestLoop:
    def __init__(self, settings: EvalEngineSettings, runner: EvaluationRunner, publisher: Publisher) -> None:
        self._settings = settings
        self._runner = runner
        self._publisher = publisher
        self._consumer: AIOKafkaConsumer | None = None
        self._dlq_producer: AIOKafkaProducer | None = None
        self._dead_letters: DeadLetterQueue | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._tracker = OffsetTracker()
        self._waiting: list[tuple[float, int, Job]] = []  # (due, seq, job): a heap
        self._seq = itertools.count()
        self._queue: FairQueue[Job] = FairQueue(settings.eval_concurrency, settings.eval_tenant_concurrency)
        self._running: dict[asyncio.Task[None], Job] = {}
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._committed: dict[TopicPartition, int] = {}
        self._last_commit = 0.0

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def liveness(self) -> LivenessCheck:
        return task_liveness(lambda: self._task)

    @property
    def held(self) -> int:
        return len(self._waiting) + len(self._queue) + len(self._running) + len(self._side_tasks)

    async def start(self) -> None:
        s = self._settings
        self._dlq_producer = create_producer(s, client_id=f"{s.service_name}-requests-dlq")
        await self._dlq_producer.start()
        self._dead_letters = DeadLetterQueue(self._dlq_producer, s.dlq_max_per_minute, "eval-requests")
        consumer = create_consumer(s, group_id=s.eval_group_id, client_id=f"{s.service_name}-requests")
        consumer.subscribe([eval_requests.TOPIC], listener=_Rebalance(self))
        await consumer.start()
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(), name="eval-requests")

    async def _run(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        try:
            while not self._stopping.is_set():
                self._throttle(consumer)
                fetched = await consumer.getmany(timeout_ms=100, max_records=500)
                for tp, records in fetched.items():
                    for record in records:
                        if tp not in consumer.assignment():
                            break  # revoked meanwhile: the next owner reads it
                        await self._take(tp, record)
                self._release_due()
                self._dispatch()
                HELD.set(self.held)
                if time.monotonic() - self._last_commit >= COMMIT_EVERY_SECONDS:
                    await self._commit()
            await self._drain(STOP_GRACE_SECONDS)
            await self._commit()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("eval_request_loop_failed")
            raise

    def _throttle(self, consumer: AIOKafkaConsumer) -> None:
        assigned = consumer.assignment()
        if self.held >= self._settings.eval_max_held:
            consumer.pause(*assigned)
        elif consumer.paused():
            consumer.resume(*consumer.paused())

    async def _take(self, tp: TopicPartition, record: ConsumerRecord[bytes, bytes]) -> None:
        self._tracker.take(tp, record.offset)
        try:
            envelope = eval_requests.decode(record.value)
        except InvalidRecordError as exc:
            assert self._dead_letters is not None
            await self._dead_letters.send(record, str(exc))
            self._tracker.done(tp, record.offset)
            return
        request = envelope.payload
        due = request.not_before.timestamp() if request.not_before is not None else 0.0
        job = Job(
            tp,
            record.offset,
            envelope.tenant_id,
            envelope.project_id,
            request,
            request.created_at or envelope.received_at,
            due,
        )
        if due > time.time():
            heapq.heappush(self._waiting, (due, next(self._seq), job))
        else:
            self._enqueue(job)

    def _enqueue(self, job: Job) -> None:
        if self._queue.queued(job.tenant_id) >= self._settings.eval_tenant_max_queued:
            self._side(self._defer(job))
        else:
            self._queue.push(job.tenant_id, job)

    def _side(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def _defer(self, job: Job) -> None:
        """Re-enqueue a request of a tenant over its queue bound, unchanged but for a later start."""
        later = datetime.now(UTC) + timedelta(seconds=self._settings.eval_defer_seconds)
        try:
            await self._publisher.publish(
                job.tenant_id, [], [(job.project_id, job.request.model_copy(update={"not_before": later}))]
            )
        except Exception as exc:
            log.warning("eval_defer_failed", error=repr(exc))
            self._hold(job, time.time() + RETRY_SECONDS)
            return
        self._tracker.done(job.tp, job.offset)

    def _hold(self, job: Job, until: float) -> None:
        job.due = until
        heapq.heappush(self._waiting, (until, next(self._seq), job))

    def _release_due(self) -> None:
        now = time.time()
        while self._waiting and self._waiting[0][0] <= now:
            _, _, job = heapq.heappop(self._waiting)
            self._enqueue(job)

    def _dispatch(self) -> None:
        for _, job in self._queue.take():
            task = asyncio.create_task(self._execute(job), name=f"eval-{job.request.eval_id}")
            self._running[task] = job
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        job = self._running.pop(task, None)
        if job is not None:
            self._queue.finished(job.tenant_id)
        if not self._stopping.is_set():
            self._dispatch()

    async def _execute(self, job: Job) -> None:
        try:
            if await self._runner.already_done(job):
                self._tracker.done(job.tp, job.offset)
                return
            again = await self._runner.run(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("eval_run_failed", eval_id=job.request.eval_id, error=repr(exc)[:500])
            self._hold(job, time.time() + RETRY_SECONDS)
            return
        if again is not None:
            self._hold(job, again)
        else:
            self._tracker.done(job.tp, job.offset)

    async def _commit(self) -> None:
        if self._consumer is None:
            return
        self._last_commit = time.monotonic()
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp in self._consumer.assignment():
            offset = self._tracker.committable(tp)
            if offset is not None and offset != self._committed.get(tp):
                offsets[tp] = OffsetAndMetadata(offset, "")
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            log.warning("eval_commit_failed_rebalanced", error=str(exc)[:300])
            return
        for tp, meta in offsets.items():
            self._committed[tp] = meta.offset

    async def _drain(self, grace: float, only: set[TopicPartition] | None = None) -> None:
        """Wait up to ``grace`` seconds for running evaluations (of ``only``), then cancel them."""
        tasks = [t for t, job in self._running.items() if only is None or job.tp in only]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Before a rebalance: drop what waits, let what runs finish (bounded), commit, forget."""
        self._waiting = [entry for entry in self._waiting if entry[2].tp not in revoked]
        heapq.heapify(self._waiting)
        self._queue.drop(lambda job: job.tp not in revoked)
        await self._drain(REVOKE_GRACE_SECONDS, revoked)
        try:
            await self._commit()
        except Exception as exc:
            log.warning("eval_commit_on_revoke_failed", error=repr(exc))
        self._tracker.forget(revoked)
        for tp in revoked:
            self._committed.pop(tp, None)

    async def stop(self) -> None:
        """Clean stop: finish (bounded) what runs, commit what is durable, leave the group."""
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._close()

    async def abort(self) -> None:
        """Stop without finishing or committing anything: what a crash looks like."""
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for task in [*self._running, *self._side_tasks]:
            task.cancel()
        await asyncio.gather(*self._running, *self._side_tasks, return_exceptions=True)
        await self._close()

    async def _close(self) -> None:
        for task in list(self._side_tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self._dlq_producer is not None:
            await self._dlq_producer.stop()
            self._dlq_producer = None
