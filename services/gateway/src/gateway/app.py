"""The gateway application factory: ``create_app(settings) -> web.Application``.

Resources (Kafka producer, Redis, ClickHouse, the config log reader) live in ``cleanup_ctx``
and are reached through typed ``web.AppKey``s. Start fails fast when a dependency is down.
A ClickHouse client may be injected: the local stack shares one embedded chDB between services.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web

from gateway.api import gateway_routes
from gateway.auth import Authenticator, authenticator_key
from gateway.config_stream import StreamHub
from gateway.control_proxy import control_proxy_ctx
from gateway.control_sdk import bundles_key, decision_log_key, live_signals_key, stream_hub_key
from gateway.decision_log import DecisionLog
from gateway.dedup import TraceDeduplicator
from gateway.ingest_outcomes import ingest_outcomes_ctx, ingest_outcomes_middleware
from gateway.key_usage import KeyUsageRecorder, key_usage_key
from gateway.limits import RateLimiter, add_rate_limit_headers, limits_middleware, rate_limiter_key
from gateway.live_signals import LiveSignals
from gateway.live_tail import end_live_streams, live_hub_ctx
from gateway.metrics_query import query_engine_key
from gateway.openapi import OpenApiDocument, openapi_key
from gateway.policy_bundles import PolicyBundles
from gateway.query.engine import MetadataKeys, QueryEngine
from gateway.read_errors import read_errors_middleware
from gateway.resources import (
    clickhouse_key,
    config_reader_key,
    config_state,
    dedup_key,
    eval_quota_key,
    producer_key,
    redis_key,
    settings_key,
)
from gateway.routes import RouteTable, auth_middleware, route_table_key
from gateway.sessions import JwksCache, SessionVerifier
from gateway.settings import GatewaySettings
from trulayer_common import topics
from trulayer_common.broker_health import BrokerHealth, broker_health
from trulayer_common.clickhouse import ClickHouse, clickhouse_for
from trulayer_common.config import ConfigLogReader
from trulayer_common.evals.quota import EvalQuota
from trulayer_common.health import add_health_checks
from trulayer_common.http import request_id_middleware
from trulayer_common.kafka import create_producer
from trulayer_common.logging import get_logger
from trulayer_common.redis import connected_redis, redis_ok
from trulayer_common.routing import path_guard

log = get_logger(__name__)
broker_health_key = web.AppKey("broker_health", BrokerHealth)


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
        async with clickhouse_for(
            settings.clickhouse_url, settings.clickhouse_database, shared, settings.clickhouse_read_policy()
        ) as ch:
            app[clickhouse_key] = ch
            app[query_engine_key] = QueryEngine(ch, MetadataKeys(ch))
            yield

    return ctx


async def _config(app: web.Application) -> AsyncIterator[None]:
    reader = ConfigLogReader(app[settings_key])
    await reader.start()
    app[config_reader_key] = reader
    app[config_state] = reader.state
    yield
    await reader.stop()


async def _control(app: web.Application) -> AsyncIterator[None]:
    """The SDK surface's state: bundles from the config log, live signals, open streams, the
    decision log. Streams are woken by config and signal changes and ended on shutdown."""
    settings = app[settings_key]
    state = app[config_state]
    hub = StreamHub(settings.control_stream_max, settings.control_stream_max_per_tenant)
    live = LiveSignals(settings)
    await live.start()
    state.control.listen(hub.changed)
    live.listen(hub.changed)
    decisions = DecisionLog(
        app[producer_key],
        flush_interval=settings.decision_log_flush_ms / 1000,
        max_pending=settings.decision_log_max_pending,
    )
    decisions.start()
    app[bundles_key] = PolicyBundles(state)
    app[live_signals_key] = live
    app[stream_hub_key] = hub
    app[decision_log_key] = decisions
    yield
    hub.shutdown()
    await decisions.stop()
    await live.stop()


async def _end_streams(app: web.Application) -> None:
    """``on_shutdown`` runs before the server waits for open requests: end the SSE streams."""
    hub = app.get(stream_hub_key)
    if hub is not None:
        hub.shutdown()


async def _auth(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
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
            app[config_reader_key], SessionVerifier(settings, jwks), settings.config_max_staleness_seconds
        )
        yield


async def _limits(app: web.Application) -> AsyncIterator[None]:
    redis = app[redis_key]
    if app[settings_key].limits_enabled:
        app[rate_limiter_key] = RateLimiter(redis, app[settings_key].plans)
        app[eval_quota_key] = EvalQuota(redis)
    usage = KeyUsageRecorder(redis)
    app[key_usage_key] = usage
    yield
    await usage.close()


def create_app(settings: GatewaySettings, *, clickhouse: ClickHouse | None = None) -> web.Application:
    app = web.Application(
        middlewares=[
            request_id_middleware(settings.service_name),
            read_errors_middleware,
            path_guard,
            auth_middleware,
            ingest_outcomes_middleware,
            limits_middleware,
        ]
    )
    app[settings_key] = settings
    table = RouteTable(gateway_routes(settings))
    table.install(app)
    app[route_table_key] = table
    app[openapi_key] = OpenApiDocument(table.specs)
    app.cleanup_ctx.extend(
        [
            _kafka,
            _redis,
            _clickhouse(clickhouse),
            _config,
            _control,
            _auth,
            _limits,
            control_proxy_ctx,
            ingest_outcomes_ctx,
            live_hub_ctx,
        ]
    )
    app.on_shutdown.extend([_end_streams, end_live_streams])
    app.on_response_prepare.append(add_rate_limit_headers)

    async def kafka_ready() -> bool:
        return app[broker_health_key].healthy

    async def redis_ready() -> bool:
        return await redis_ok(app[redis_key])

    async def clickhouse_ready() -> bool:
        return await app[clickhouse_key].ping()

    async def config_ready() -> bool:
        # Caught up at start, and still hearing from the broker: revocations reach this replica.
        return app[config_reader_key].is_current(settings.config_max_lag_seconds)

    async def signals_ready() -> bool:
        live = app.get(live_signals_key)
        return live is not None and live.ready.is_set()

    add_health_checks(
        app,
        {
            "kafka": kafka_ready,
            "redis": redis_ready,
            "clickhouse": clickhouse_ready,
            "config": config_ready,
            "signals": signals_ready,
        },
    )
    return app
