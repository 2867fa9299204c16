"""The ingest-worker application: health/readiness/metrics routes and the writers in cleanup_ctx.

Liveness (``/healthz``) fails, with the reason, once a writer's loop died for good (a
dead-letter flood, an unexpected error): a restart is what helps then. Readiness
(``/readyz``) wants every writer running (traces, alerts, feedback, evaluations, dead letters).
The trace writer announces stored traces to the live tail through Redis
(:mod:`trulayer_common.live`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from ingest_worker.settings import IngestWorkerSettings
from ingest_worker.writers import (
    TableWriter,
    alerts_writer,
    dead_letters_writer,
    decisions_writer,
    evaluations_writer,
    feedback_writer,
    trace_writer,
)
from trulayer_common import topics
from trulayer_common.broker_health import BrokerHealth, broker_health
from trulayer_common.clickhouse import ClickHouse, clickhouse_for
from trulayer_common.health import LivenessCheck, add_health_routes, task_liveness
from trulayer_common.live import LivePublisher
from trulayer_common.redis import connected_redis

settings_key = web.AppKey("settings", IngestWorkerSettings)
trace_writer_key = web.AppKey("trace_writer", TableWriter)
alerts_writer_key = web.AppKey("alerts_writer", TableWriter)
clickhouse_key = web.AppKey("clickhouse", ClickHouse)
broker_health_key = web.AppKey("broker_health", BrokerHealth)
feedback_writer_key = web.AppKey("feedback_writer", TableWriter)
evaluations_writer_key = web.AppKey("evaluations_writer", TableWriter)
dead_letters_writer_key = web.AppKey("dead_letters_writer", TableWriter)
decisions_writer_key = web.AppKey("decisions_writer", TableWriter)
WRITERS = (
    ("trace_writer", trace_writer_key, trace_writer),
    ("alerts_writer", alerts_writer_key, alerts_writer),
    ("feedback_writer", feedback_writer_key, feedback_writer),
    ("evaluations_writer", evaluations_writer_key, evaluations_writer),
    ("dead_letters_writer", dead_letters_writer_key, dead_letters_writer),
    ("decisions_writer", decisions_writer_key, decisions_writer),
)


def create_app(settings: IngestWorkerSettings, *, clickhouse: ClickHouse | None = None) -> web.Application:
    app = web.Application()
    app[settings_key] = settings

    async def run_writers(app: web.Application) -> AsyncIterator[None]:
        async with (
            clickhouse_for(
                settings.clickhouse_url, settings.clickhouse_database, clickhouse, settings.clickhouse_read_policy()
            ) as ch,
            connected_redis(settings.redis_url) as redis,
            broker_health(settings, [topics.TRACES, topics.DLQ]) as health,
        ):
            app[clickhouse_key] = ch
            app[broker_health_key] = health
            live = LivePublisher(redis)
            started: list[TableWriter] = []
            try:
                for _, key, factory in WRITERS:
                    writer = trace_writer(settings, ch, live) if factory is trace_writer else factory(settings, ch)
                    await writer.start()
                    started.append(writer)
                    app[key] = writer
                yield
            finally:
                for writer in reversed(started):
                    await writer.stop()

    def writer_liveness(key: web.AppKey[TableWriter]) -> LivenessCheck:
        return task_liveness(lambda: writer.task if (writer := app.get(key)) is not None else None)

    async def writers_ready() -> bool:
        writers = [app.get(key) for _, key, _ in WRITERS]
        return all(writer is not None and writer.running for writer in writers)

    async def kafka_ready() -> bool:
        return app[broker_health_key].healthy

    async def clickhouse_ready() -> bool:
        return await app[clickhouse_key].ping()

    app.cleanup_ctx.append(run_writers)
    add_health_routes(
        app,
        {"consumer": writers_ready, "kafka": kafka_ready, "clickhouse": clickhouse_ready},
        {name: writer_liveness(key) for name, key, _ in WRITERS},
    )
    return app
