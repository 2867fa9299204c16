"""The control-engine application. This issue's part: the config log writer and reader, health.

The tenancy, rules and policy APIs plug in here (their own modules) as they arrive.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from aiokafka import AIOKafkaProducer

from control_engine.config_log import ConfigLogWriter
from control_engine.settings import ControlEngineSettings
from trulayer_common.config import ConfigLogReader
from trulayer_common.health import add_health_routes
from trulayer_common.http import request_id_middleware
from trulayer_common.kafka import create_producer

settings_key = web.AppKey("settings", ControlEngineSettings)
producer_key = web.AppKey("producer", AIOKafkaProducer)
writer_key = web.AppKey("config_writer", ConfigLogWriter)
reader_key = web.AppKey("config_reader", ConfigLogReader)


def create_app(settings: ControlEngineSettings) -> web.Application:
    app = web.Application(middlewares=[request_id_middleware(settings.service_name)])
    app[settings_key] = settings

    async def kafka(app: web.Application) -> AsyncIterator[None]:
        producer = create_producer(settings)
        await producer.start()
        try:
            app[producer_key] = producer
            app[writer_key] = ConfigLogWriter(producer)
            reader = ConfigLogReader(settings)
            await reader.start()
            app[reader_key] = reader
            yield
            await reader.stop()
        finally:
            await producer.stop()

    async def config_ready() -> bool:
        return app[reader_key].ready.is_set()

    app.cleanup_ctx.append(kafka)
    add_health_routes(app, {"config": config_ready})
    return app
