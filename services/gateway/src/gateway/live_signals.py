"""The live window signals the gateway decides with: ``trulayer.signals`` materialised in memory.

Like the config log reader, every replica reads the compacted topic from the start without a
consumer group and then follows it; ``start`` returns once it has caught up with the end
offsets seen at start (a few thousand small records). Deciding never queries ClickHouse: it
reads :meth:`LiveSignals.of`, one tenant's :class:`~trulayer_sdk.policy.Signals`, rebuilt only
when one of the tenant's records changed. A record older (``as_of``) than the one held for
its key is ignored; a tombstone forgets the key. Records that cannot be decoded are skipped
and counted (a newer alerter). When the broker is away the last state stays (it ages out in
the decision function: a window that ended more than its length ago is not used).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import Counter

from trulayer_common.kafka import create_consumer, topic_partitions
from trulayer_common.logging import get_logger
from trulayer_common.settings import ServiceSettings
from trulayer_common.topics import InvalidRecordError, signals
from trulayer_sdk.policy import Signals, WindowStats

log = get_logger(__name__)
SKIPPED = Counter("trulayer_gateway_signals_skipped_total", "signal records that could not be decoded")
Scope = tuple[str, str]  # (project, model)


class LiveSignals:
    def __init__(self, settings: ServiceSettings) -> None:
        self._settings = settings
        self._records: dict[str, dict[Scope, signals.WindowSignal]] = {}
        self._revision: dict[str, int] = {}
        self._views: dict[str, tuple[int, Signals]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[str], None]] = []
        self.ready = asyncio.Event()

    def listen(self, listener: Callable[[str], None]) -> None:
        """``listener(tenant_id)`` after each change of a tenant's signals (quick, never raising)."""
        self._listeners.append(listener)

    def revision(self, tenant_id: str) -> int:
        return self._revision.get(tenant_id, 0)

    def of(self, tenant_id: str) -> Signals:
        revision = self._revision.get(tenant_id, 0)
        cached = self._views.get(tenant_id)
        if cached is not None and cached[0] == revision:
            return cached[1]
        records = self._records.get(tenant_id, {})
        windows = []
        anomalies: dict[str, dict[str, float]] = {}
        for (project_id, model), record in records.items():
            as_of = record.as_of.timestamp()
            for w in record.summaries():
                windows.append(
                    WindowStats(
                        project_id,
                        model,
                        w.window_secs,
                        as_of,
                        w.count,
                        w.error_rate,
                        w.latency_p50,
                        w.latency_p95,
                        w.latency_p99,
                        w.cost_per_call,
                        dict(w.eval_scores),
                    )
                )
            found = anomalies.setdefault(project_id, {})
            for kind, at in record.anomalies.items():
                found[kind] = max(found.get(kind, 0.0), at.timestamp())
        view = Signals(windows, anomalies)
        self._views[tenant_id] = (revision, view)
        return view

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """One record of the topic (a tombstone when ``value`` is None)."""
        if value is None:
            if key is None:
                return
            tenant_id, _, rest = key.decode(errors="replace").partition("|")
            project_id, _, model = rest.partition("|")
            if self._records.get(tenant_id, {}).pop((project_id, model), None) is not None:
                self._bump(tenant_id)
            return
        try:
            record = signals.decode(value).payload
        except InvalidRecordError as exc:
            SKIPPED.inc()
            log.warning("signal_record_skipped", error=str(exc))
            return
        held = self._records.setdefault(record.tenant_id, {})
        scope = (record.project_id, record.model)
        current = held.get(scope)
        if current is not None and current.as_of > record.as_of:
            return
        held[scope] = record
        self._bump(record.tenant_id)

    def _bump(self, tenant_id: str) -> None:
        self._revision[tenant_id] = self._revision.get(tenant_id, 0) + 1
        for listener in self._listeners:
            listener(tenant_id)

    async def start(self, timeout: float = 60.0) -> None:
        consumer = create_consumer(self._settings, group_id=None, client_id=f"{self._settings.service_name}-signals")
        await consumer.start()
        self._consumer = consumer
        partitions = await topic_partitions(self._settings, signals.TOPIC)
        if not partitions:
            await consumer.stop()
            self._consumer = None
            raise RuntimeError(f"topic {signals.TOPIC} does not exist: run the topic set-up first")
        assigned = [TopicPartition(signals.TOPIC, p) for p in partitions]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        end = {tp: off for tp, off in (await consumer.end_offsets(assigned)).items() if off > 0}
        self._task = asyncio.create_task(self._follow(end), name="signals-reader")
        try:
            await asyncio.wait_for(self.ready.wait(), timeout)
        except TimeoutError:
            await self.stop()
            raise RuntimeError("signals topic not caught up in time") from None
        log.info("signals_ready", tenants=len(self._records))

    async def _follow(self, pending: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        if not pending:
            self.ready.set()
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=200, max_records=10_000)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker blip: keep the last state and retry
                log.warning("signals_fetch_failed", error=str(exc))
                await asyncio.sleep(0.5)
                continue
            for messages in batches.values():
                for message in messages:
                    self.apply(message.key, message.value)
            if pending:
                for tp in list(pending):
                    if await consumer.position(tp) >= pending[tp]:
                        del pending[tp]
                if not pending:
                    self.ready.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
