"""The gateway application factory: ``create_app(settings) -> web.Application``.

Resources (Kafka producer, Redis, ClickHouse, the config log reader) live in ``cleanup_ctx``
and are reached through typed ``web.AppKey``s. Start fails fast when a dependency is down.
A ClickHouse client may be injected: the local stack shares one embedded chDB between services.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp import web

from gateway.alerts_read import add_alerts_read_routes
from gateway.auth import (
    API_KEY_ONLY,
    SESSION_ONLY,
    Authenticator,
    RouteAccess,
    authenticator_key,
    needs_authentication,
    route_access_key,
)
from gateway.compat import add_guardlayer_routes
from gateway.control_proxy import control_proxy_ctx, forward_prefix
from gateway.dedup import TraceDeduplicator
from gateway.ingest import ingest_batch, ingest_one
from gateway.key_usage import KeyUsageRecorder, key_usage_key
from gateway.limits import RateLimiter, add_rate_limit_headers, limits_middleware, rate_limiter_key
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
from gateway.sessions import JwksCache, SessionVerifier
from gateway.settings import GatewaySettings
from gateway.traces import get_trace, list_traces
from trulayer_common import topics
from trulayer_common.broker_health import BrokerHealth, broker_health
from trulayer_common.clickhouse import ClickHouse, clickhouse_for
from trulayer_common.config import ConfigLogReader
from trulayer_common.health import add_health_routes
from trulayer_common.http import request_id_middleware
from trulayer_common.kafka import create_producer
from trulayer_common.logging import bind_context, get_logger
from trulayer_common.redis import connected_redis, redis_ok

log = get_logger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
broker_health_key = web.AppKey("broker_health", BrokerHealth)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every API route needs a valid credential of a kind the route accepts; health routes do not."""
    if needs_authentication(request.path):
        principal = await request.app[authenticator_key].authenticate(request)
        request[principal_key] = principal
        bind_context(tenant_id=principal.tenant.id)
        if principal.api_key is not None and key_usage_key in request.app:
            request.app[key_usage_key].used(principal.api_key.id)
    return await handler(request)


async def _kafka(app: web.Application) -> AsyncIterator[None]:
    producer = create_producer(app[settings_key])
    await producer.start()  # raises when no broker answers: fail fast
    app[producer_key] = producer
    async with broker_health(app[settings_key], [topics.TRACES]) as health:
        app[broker_health_key] = health
        yield
    await producer.stop()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    async with connected_redis(app[settings_key].redis_url) as redis:
        app[redis_key] = redis
        app[dedup_key] = TraceDeduplicator(redis, app[settings_key].dedup_ttl_seconds)
        yield


def _clickhouse(shared: ClickHouse | None) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[settings_key]
        async with clickhouse_for(settings.clickhouse_url, settings.clickhouse_database, shared) as ch:
            app[clickhouse_key] = ch
            yield

    return ctx


async def _config(app: web.Application) -> AsyncIterator[None]:
    reader = ConfigLogReader(app[settings_key])
    await reader.start()
    app[config_reader_key] = reader
    app[config_state] = reader.state
    yield
    await reader.stop()


async def _auth(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    if settings.benchmark_api_key_id is not None:
        log.warning("authentication_disabled_for_benchmark", api_key_id=settings.benchmark_api_key_id)
    async with aiohttp.ClientSession() as http:
        jwks = None
        if settings.session_jwks_url:
            jwks = JwksCache(
                settings.session_jwks_url,
                http,
                settings.session_jwks_cache_seconds,
                settings.session_jwks_min_refresh_seconds,
            )
        app[authenticator_key] = Authenticator(
            app[config_reader_key],
            SessionVerifier(settings, jwks),
            app[route_access_key],
            settings.benchmark_api_key_id,
        )
        yield


async def _limits(app: web.Application) -> AsyncIterator[None]:
    redis = app[redis_key]
    if app[settings_key].limits_enabled:
        app[rate_limiter_key] = RateLimiter(redis, app[settings_key].plans)
    usage = KeyUsageRecorder(redis)
    app[key_usage_key] = usage
    yield
    await usage.close()


def create_app(settings: GatewaySettings, *, clickhouse: ClickHouse | None = None) -> web.Application:
    app = web.Application(
        middlewares=[request_id_middleware(settings.service_name), auth_middleware, limits_middleware]
    )
    app[settings_key] = settings
    app[route_access_key] = RouteAccess()
    app.cleanup_ctx.extend([_kafka, _redis, _clickhouse(clickhouse), _config, _auth, _limits, control_proxy_ctx])
    app.on_response_prepare.append(add_rate_limit_headers)

    async def kafka_ready() -> bool:
        return app[broker_health_key].healthy

    async def redis_ready() -> bool:
        return await redis_ok(app[redis_key])

    async def clickhouse_ready() -> bool:
        return await app[clickhouse_key].ping()

    async def config_ready() -> bool:
        return app[config_reader_key].is_current(settings.config_max_lag_seconds)

    add_health_routes(
        app,
        {"kafka": kafka_ready, "redis": redis_ready, "clickhouse": clickhouse_ready, "config": config_ready},
    )
    app[route_access_key].allow("/v1/ingest", API_KEY_ONLY)
    app[route_access_key].allow("/v1/otlp", API_KEY_ONLY)
    app.router.add_post("/v1/ingest", ingest_one)
    app.router.add_post("/v1/ingest/batch", ingest_batch)
    app.router.add_get("/v1/traces", list_traces)
    app.router.add_get("/v1/traces/{trace_id}", get_trace)
    app.router.add_get("/v1/metrics", get_metrics)
    add_openapi_routes(app)
    # Control plane: served by the control-engine (gateway.control_proxy).
    forward_prefix(app, "/v1/projects", access=SESSION_ONLY)
    forward_prefix(app, "/v1/apikeys", access=SESSION_ONLY)
    # Alerting (API key or session): rules and webhooks in the control-engine, anomalies here.
    for prefix in ("/v1/alerts", "/v1/failure-rules", "/v1/webhooks"):
        forward_prefix(app, prefix)
    add_alerts_read_routes(app)
    if settings.guardlayer_compat:
        add_guardlayer_routes(app)
    return app
