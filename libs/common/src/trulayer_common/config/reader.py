"""Follows ``trulayer.config`` from the beginning and keeps a :class:`ConfigState` current.

Every replica reads every record (no consumer group). ``ready`` is set once the reader has
caught up with the end offsets seen at start, so a service never answers from a partial view
(an API key missing from a half-read log would wrongly be refused). After that,
:meth:`ConfigLogReader.lag_seconds` says how old the view may be (:mod:`.freshness`): it grows
as soon as the broker stops answering, so a service can stop trusting a view that may miss a
revocation: not ready beyond ``CONFIG_MAX_LAG_SECONDS`` (:meth:`is_current`), and the gateway
refuses to authenticate beyond ``CONFIG_MAX_STALENESS_SECONDS``. Exported as
``trulayer_config_log_lag_seconds{service}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Gauge

from trulayer_common import topics
from trulayer_common.config.freshness import Freshness
from trulayer_common.config.state import ConfigState
from trulayer_common.kafka import create_consumer, stop_consumer, topic_partitions
from trulayer_common.logging import get_logger
from trulayer_common.settings import ServiceSettings
from trulayer_common.topics import config as config_records

log = get_logger(__name__)
LAG = Gauge("trulayer_config_log_lag_seconds", "how old this service's view of the config log may be", ["service"])


class ConfigLogReader:
    def __init__(self, settings: ServiceSettings, state: ConfigState | None = None) -> None:
        self.settings = settings
        self.state = state or ConfigState()
        self.ready = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        # Replaced after every fetch round: waiters hold the old one, so no wake-up is missed.
        self._progress = asyncio.Event()
        self.freshness = Freshness(time.time())
        LAG.labels(settings.service_name).set_function(self.lag_seconds)

    def lag_seconds(self) -> float:
        """How old the materialised state may be: now minus the time of the newest broker answer
        whose records are all applied; infinite before the first catch-up."""
        if not self.ready.is_set():
            return float("inf")
        return self.freshness.staleness(time.time())

    def is_current(self, max_lag_seconds: float) -> bool:
        """Readiness: caught up at start and :meth:`lag_seconds` within ``max_lag_seconds``."""
        return self.lag_seconds() <= max_lag_seconds

    async def start(self, timeout: float = 60.0) -> None:
        """Start following and wait until caught up with the log as it is now."""
        consumer = create_consumer(self.settings, group_id=None, client_id=f"{self.settings.service_name}-config")
        await consumer.start()
        self._consumer = consumer
        partitions = await topic_partitions(self.settings, topics.CONFIG)
        if not partitions:
            await consumer.stop()
            raise RuntimeError(f"topic {topics.CONFIG} does not exist: run the topic set-up first")
        assigned = [TopicPartition(topics.CONFIG, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        end = await consumer.end_offsets(assigned)
        self._task = asyncio.create_task(self._follow(dict(end)), name="config-log-reader")
        try:
            await asyncio.wait_for(self.ready.wait(), timeout)
        except TimeoutError:
            await self.stop()
            raise RuntimeError("config log not caught up in time") from None
        log.info("config_log_ready", records=self.state.records_applied)

    async def _follow(self, end: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        pending = {tp: off for tp, off in end.items() if off > 0}
        if not pending:
            self.ready.set()
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=200, max_records=10_000)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker blip: keep the last good state and retry
                log.warning("config_log_fetch_failed", error=str(exc))
                await asyncio.sleep(0.5)
                continue
            for messages in batches.values():
                for message in messages:
                    self._apply(message.key, message.value)
            self._progress.set()
            self._progress = asyncio.Event()
            for tp in consumer.assignment():
                polled = consumer.last_poll_timestamp(tp)
                self.freshness.observe(
                    tp, await consumer.position(tp), consumer.highwater(tp), None if polled is None else polled / 1000
                )
            if pending:
                # Position, not the last offset seen: compaction may have removed the record
                # just before the end offset.
                for tp in list(pending):
                    if await consumer.position(tp) >= pending[tp]:
                        del pending[tp]
                if not pending:
                    self.ready.set()

    async def sync(self, timeout: float = 5.0) -> None:
        """Wait until every record acknowledged before this call has been applied.

        The read-your-writes barrier of the control-engine: after taking a tenant's write lock,
        the state includes every change another replica made under that lock before. Raises
        ``TimeoutError`` when the log cannot be caught up in time, including when the broker
        cannot even say where the log ends (callers answer 503, never 500).
        """
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("config log reader is not started")
        async with asyncio.timeout(timeout):
            assigned = sorted(consumer.assignment())
            try:
                end = await consumer.end_offsets(assigned)
            except KafkaError as exc:
                raise TimeoutError(f"config log end offsets unavailable: {exc!r}") from exc
            while True:
                progress = self._progress
                # No await between fetching and applying in _follow: a position past a record
                # means the record is applied.
                positions = [await consumer.position(tp) for tp in end]
                if all(pos >= offset for pos, offset in zip(positions, end.values(), strict=True)):
                    return
                await progress.wait()

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        try:
            if value is None:
                if key is not None:
                    self.state.delete(config_records.decode_key(key))
                return
            self.state.apply(config_records.decode(value))
        except topics.InvalidRecordError as exc:
            # A record from a newer control-engine: skip it rather than stop following.
            log.error("config_record_invalid", key=key, error=str(exc))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await stop_consumer(consumer)
