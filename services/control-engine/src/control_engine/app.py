"""The control-engine application: owns configuration and appends every change to ``trulayer.config``.

It is reached only through the gateway (which authenticates callers and forwards the
control-plane routes with the principal and the internal token, see :mod:`control_engine.requests`).
The routes are those declared in :data:`trulayer_common.control_api.CONTROL_ROUTES`; each API
module exports ``HANDLERS`` by operation name, bound here.
A ClickHouse client may be injected: the local stack shares one embedded chDB between services.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from control_engine import (
    alerting_api,
    api_keys,
    eval_rules_api,
    guardlayer,
    killswitch_api,
    model_routes_api,
    policies_api,
    projects,
)
from control_engine.audit import AuditLog
from control_engine.config_log import ConfigLogWriter
from control_engine.requests import control_middleware, install_routes
from control_engine.resources import (
    audit_key,
    clickhouse_key,
    outbound_key,
    producer_key,
    reader_key,
    redis_key,
    secret_box_key,
    settings_key,
    tenant_writes_key,
    writer_key,
)
from control_engine.settings import ControlEngineSettings
from control_engine.tenant_writes import TenantWrites
from trulayer_common import topics
from trulayer_common.broker_health import BrokerHealth, broker_health
from trulayer_common.clickhouse import ClickHouse, clickhouse_for
from trulayer_common.config import ConfigLogReader
from trulayer_common.control_api import CONTROL_ROUTES
from trulayer_common.health import add_health_routes
from trulayer_common.http import request_id_middleware
from trulayer_common.kafka import create_producer
from trulayer_common.logging import get_logger
from trulayer_common.outbound import OutboundClient
from trulayer_common.redis import connected_redis, redis_ok

log = get_logger(__name__)
broker_health_key = web.AppKey("broker_health", BrokerHealth)


async def _kafka(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    producer = create_producer(settings)
    await producer.start()
    try:
        app[producer_key] = producer
        app[writer_key] = ConfigLogWriter(producer)
        reader = ConfigLogReader(settings)
        await reader.start()
        app[reader_key] = reader
        async with broker_health(settings, [topics.CONFIG]) as health:
            app[broker_health_key] = health
            yield
        await reader.stop()
    finally:
        await producer.stop()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    async with connected_redis(app[settings_key].redis_url) as redis:
        app[redis_key] = redis
        yield


def _clickhouse(shared: ClickHouse | None) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[settings_key]
        async with clickhouse_for(
            settings.clickhouse_url, settings.clickhouse_database, shared, settings.clickhouse_read_policy()
        ) as ch:
            app[clickhouse_key] = ch
            app[audit_key] = AuditLog(ch)
            yield

    return ctx


async def _tenant_writes(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    app[tenant_writes_key] = TenantWrites(
        app[redis_key],
        app[reader_key],
        app[writer_key],
        app[audit_key],
        lock_ttl_seconds=settings.tenant_lock_ttl_seconds,
        lock_wait_seconds=settings.tenant_lock_wait_seconds,
        sync_timeout_seconds=settings.config_sync_timeout_seconds,
    )
    yield


async def _outbound(app: web.Application) -> AsyncIterator[None]:
    """The client of tenant-chosen URLs (webhook tests), behind the SSRF guard."""
    settings = app[settings_key]
    async with OutboundClient(
        settings.outbound_policy(),
        timeout_seconds=settings.webhook_test_timeout_seconds,
        user_agent="trulayer-control-engine/1",
    ) as client:
        app[outbound_key] = client
        yield


def create_app(settings: ControlEngineSettings, *, clickhouse: ClickHouse | None = None) -> web.Application:
    token = settings.internal_token.get_secret_value() if settings.internal_token else None
    if token is None:
        log.warning("internal_token_unset", detail="every API request will be refused with 401")
    app = web.Application(
        middlewares=[request_id_middleware(settings.service_name), control_middleware(token)],
        client_max_size=settings.max_body_bytes,
    )
    app[settings_key] = settings
    app[secret_box_key] = settings.secret_box()  # refuses to start without CONFIG_SECRET_KEYS
    app.cleanup_ctx.extend([_kafka, _redis, _clickhouse(clickhouse), _tenant_writes, _outbound])

    async def kafka_ready() -> bool:
        return app[broker_health_key].healthy

    async def config_ready() -> bool:
        return app[reader_key].is_current(settings.config_max_lag_seconds)

    async def redis_ready() -> bool:
        return await redis_ok(app[redis_key])

    async def clickhouse_ready() -> bool:
        return await app[clickhouse_key].ping()

    add_health_routes(
        app, {"kafka": kafka_ready, "config": config_ready, "redis": redis_ready, "clickhouse": clickhouse_ready}
    )
    handlers = {
        **projects.HANDLERS,
        **api_keys.HANDLERS,
        **guardlayer.HANDLERS,
        **alerting_api.HANDLERS,
        **eval_rules_api.HANDLERS,
        **killswitch_api.HANDLERS,
        **policies_api.HANDLERS,
        **model_routes_api.HANDLERS,
    }
    install_routes(app, CONTROL_ROUTES, handlers)
    return app
