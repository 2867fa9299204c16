"""The ingest-worker application: health/readiness/metrics routes and the worker in cleanup_ctx."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from ingest_worker.alerts_writer import AlertsWriter
from ingest_worker.settings import IngestWorkerSettings
from ingest_worker.worker import IngestWorker
from trulayer_common import topics
from trulayer_common.broker_health import BrokerHealth, broker_health
from trulayer_common.clickhouse import ClickHouse, clickhouse_for
from trulayer_common.health import add_health_routes

settings_key = web.AppKey("settings", IngestWorkerSettings)
worker_key = web.AppKey("worker", IngestWorker)
alerts_writer_key = web.AppKey("alerts_writer", AlertsWriter)
clickhouse_key = web.AppKey("clickhouse", ClickHouse)
broker_health_key = web.AppKey("broker_health", BrokerHealth)


def create_app(settings: IngestWorkerSettings, *, clickhouse: ClickHouse | None = None) -> web.Application:
    app = web.Application()
    app[settings_key] = settings

    async def run_worker(app: web.Application) -> AsyncIterator[None]:
        async with clickhouse_for(settings.clickhouse_url, settings.clickhouse_database, clickhouse) as ch:
            app[clickhouse_key] = ch
            async with broker_health(settings, [topics.TRACES, topics.DLQ]) as health:
                app[broker_health_key] = health
                worker = IngestWorker(settings, ch)
                await worker.start()
                app[worker_key] = worker
                alerts_writer = AlertsWriter(settings, ch)
                await alerts_writer.start()
                app[alerts_writer_key] = alerts_writer
                yield
                await alerts_writer.stop()
                await worker.stop()

    async def worker_ready() -> bool:
        return app[worker_key].running

    async def kafka_ready() -> bool:
        return app[broker_health_key].healthy

    async def clickhouse_ready() -> bool:
        return await app[clickhouse_key].ping()

    app.cleanup_ctx.append(run_worker)
    add_health_routes(app, {"consumer": worker_ready, "kafka": kafka_ready, "clickhouse": clickhouse_ready})
    return app
