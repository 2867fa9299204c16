"""The gateway application factory: ``create_app(settings) -> web.Application``.

Resources (Kafka producer, Redis, ClickHouse, the config log reader) live in ``cleanup_ctx``
and are reached through typed ``web.AppKey``s. Start fails fast when a dependency is down.
A ClickHouse client may be injected: the local stack shares one embedded chDB between services.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from gateway.auth import authenticate
from gateway.dedup import TraceDeduplicator
from gateway.ingest import ingest_batch, ingest_one
from gateway.metrics import get_metrics
from gateway.openapi import add_openapi_routes
from gateway.resources import (
    clickhouse_key,
    config_reader_key,
    config_state,
    dedup_key,
    principal_key,
    producer_key,
    redis_key,
    settings_key,
)
from gateway.settings import GatewaySettings
from gateway.traces import get_trace, list_traces
from trulayer_common.clickhouse import ClickHouse, apply_migrations, create_clickhouse
from trulayer_common.config import ConfigLogReader
from trulayer_common.errors import ApiError
from trulayer_common.health import add_health_routes
from trulayer_common.http import request_id_middleware
from trulayer_common.kafka import create_producer
from trulayer_common.logging import bind_context, get_logger
from trulayer_common.redis import create_redis, redis_ok

log = get_logger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every ``/v1`` route needs a valid API key; health routes do not."""
    if request.path.startswith("/v1/"):
        reader = request.app[config_reader_key]
        if not reader.ready.is_set():
            raise ApiError(
                503, "Starting up: configuration not loaded yet", "unavailable", headers={"Retry-After": "1"}
            )
        principal = authenticate(request, request.app[config_state])
        request[principal_key] = principal
        bind_context(tenant_id=principal.tenant.id)
    return await handler(request)


async def _kafka(app: web.Application) -> AsyncIterator[None]:
    producer = create_producer(app[settings_key])
    await producer.start()  # raises when no broker answers: fail fast
    app[producer_key] = producer
    yield
    await producer.stop()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    redis = create_redis(app[settings_key].redis_url)
    if not await redis_ok(redis):
        await redis.aclose()
        raise RuntimeError(f"Redis at {app[settings_key].redis_url} is unreachable")
    app[redis_key] = redis
    app[dedup_key] = TraceDeduplicator(redis, app[settings_key].dedup_ttl_seconds)
    yield
    await redis.aclose()


def _clickhouse(shared: ClickHouse | None) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[settings_key]
        ch = shared or create_clickhouse(settings.clickhouse_url, settings.clickhouse_database)
        if shared is None:
            await apply_migrations(ch)
        app[clickhouse_key] = ch
        yield
        if shared is None:
            ch.close()

    return ctx


async def _config(app: web.Application) -> AsyncIterator[None]:
    reader = ConfigLogReader(app[settings_key])
    await reader.start()
    app[config_reader_key] = reader
    app[config_state] = reader.state
    yield
    await reader.stop()


def create_app(settings: GatewaySettings, *, clickhouse: ClickHouse | None = None) -> web.Application:
    app = web.Application(middlewares=[request_id_middleware(settings.service_name), auth_middleware])
    app[settings_key] = settings
    app.cleanup_ctx.extend([_kafka, _redis, _clickhouse(clickhouse), _config])

    async def kafka_ready() -> bool:
        producer = app.get(producer_key)
        return producer is not None and producer.client.cluster.brokers() != set()

    async def redis_ready() -> bool:
        return await redis_ok(app[redis_key])

    async def clickhouse_ready() -> bool:
        return await app[clickhouse_key].ping()

    async def config_ready() -> bool:
        return app[config_reader_key].ready.is_set()

    add_health_routes(
        app,
        {"kafka": kafka_ready, "redis": redis_ready, "clickhouse": clickhouse_ready, "config": config_ready},
    )
    app.router.add_post("/v1/ingest", ingest_one)
    app.router.add_post("/v1/ingest/batch", ingest_batch)
    app.router.add_get("/v1/traces", list_traces)
    app.router.add_get("/v1/traces/{trace_id}", get_trace)
    app.router.add_get("/v1/metrics", get_metrics)
    add_openapi_routes(app)
    return app
