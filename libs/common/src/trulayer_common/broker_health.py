"""Can the brokers take this service's writes right now? A readiness signal that follows the
broker within seconds, for ``/readyz``.

A producer's own view does not: its cached metadata still lists a broker that was killed, so a
readiness check built on it kept answering 200 while every produce timed out. Instead a
background task probes every ``interval`` seconds, on a client of its own:

1. a metadata request to a broker that answers (any of those known);
2. every partition of the topics this service writes has a leader;
3. a connection to each of those leaders is up (or can be opened).

Each step has ``timeout`` seconds. The signal is healthy only while the last probe passed and
is recent (a probe that hangs counts as failed once it is overdue), so a dead broker flips it
within about ``interval + timeout`` seconds; a broker back flips it within ``interval``.
Transitions are logged (``broker_unhealthy`` / ``broker_healthy``) and exported as the gauge
``trulayer_broker_healthy``. This is not an acks=all write: with a single-broker cluster the
three steps fail exactly when a produce cannot be acknowledged; with replication, a leader that
has lost its in-sync replicas still passes here and the gateway's 503 on a timed-out produce
remains the last word.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence

from aiokafka import TopicPartition
from aiokafka.client import AIOKafkaClient
from prometheus_client import Gauge

from trulayer_common.kafka import create_kafka_client
from trulayer_common.logging import get_logger
from trulayer_common.settings import ServiceSettings

log = get_logger(__name__)
BROKER_HEALTHY = Gauge("trulayer_broker_healthy", "1 while the last broker probe passed", ["client"])


class BrokerHealth:
    def __init__(
        self,
        client: AIOKafkaClient,
        topics: Sequence[str],
        *,
        interval: float = 1.0,
        timeout: float = 2.0,
        name: str = "broker-health",
    ) -> None:
        self._client = client
        self._topics = list(topics)
        self._interval = interval
        self._timeout = timeout
        self._task: asyncio.Task[None] | None = None
        self._passed_at: float | None = None
        self._healthy = False
        self.reason: str | None = "not probed yet"
        self._gauge = BROKER_HEALTHY.labels(name)

    @property
    def healthy(self) -> bool:
        """True while the last probe passed and is at most ``interval + timeout`` seconds old."""
        if self._passed_at is None or not self._healthy:
            return False
        return time.monotonic() - self._passed_at <= self._interval + self._timeout + 0.5

    async def start(self) -> None:
        """Bootstrap the client (raises when no broker answers: fail fast) and start probing."""
        await self._client.bootstrap()
        await self.probe()
        self._task = asyncio.create_task(self._run(), name="broker-health")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._client.close(), self._timeout)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.probe()

    async def probe(self) -> bool:
        """One probe; records and returns its outcome."""
        try:
            reason = await asyncio.wait_for(self._check(), self._timeout)
        except TimeoutError:
            reason = f"no answer within {self._timeout:g}s"
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"[:300]
        self._record(reason)
        return reason is None

    async def _check(self) -> str | None:
        if not await self._client.force_metadata_update():
            return "no broker answered a metadata request"
        cluster = self._client.cluster
        leaders: set[int] = set()
        for topic in self._topics:
            partitions = cluster.partitions_for_topic(topic)
            if not partitions:
                return f"topic {topic} unknown to the brokers"
            for partition in partitions:
                leader = cluster.leader_for_partition(TopicPartition(topic, partition))
                if leader is None or leader < 0:
                    return f"{topic}[{partition}] has no leader"
                leaders.add(leader)
        for leader in sorted(leaders):
            if not await self._client.ready(leader):
                return f"leader {leader} not reachable"
        return None

    def _record(self, reason: str | None) -> None:
        now = time.monotonic()
        if reason is None:
            self._passed_at = now
            if not self._healthy:
                log.info("broker_healthy", topics=self._topics)
        elif self._healthy or self.reason != reason:
            log.warning("broker_unhealthy", reason=reason, topics=self._topics)
        self._healthy = reason is None
        self.reason = reason
        self._gauge.set(1 if reason is None else 0)


@contextlib.asynccontextmanager
async def broker_health(settings: ServiceSettings, topics: Sequence[str]) -> AsyncIterator[BrokerHealth]:
    """A started :class:`BrokerHealth` for ``topics`` on a client of its own, stopped at exit."""
    health = BrokerHealth(
        create_kafka_client(settings, client_id=f"{settings.service_name}-health"),
        topics,
        interval=settings.broker_probe_interval_seconds,
        timeout=settings.broker_probe_timeout_seconds,
        name=settings.service_name,
    )
    await health.start()
    try:
        yield health
    finally:
        await health.stop()
