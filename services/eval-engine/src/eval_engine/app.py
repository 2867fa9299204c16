"""The eval-engine application: ``create_app(settings)`` with health routes and, in
``cleanup_ctx``, the config log reader (eval rules, projects, plans), Redis, ClickHouse, the
judge's HTTP client, and the two loops: the request runner (:mod:`eval_engine.request_loop`)
and the eval rules on the trace stream (:mod:`eval_engine.rule_stream`).

Readiness (``/readyz``): the config log current (``CONFIG_MAX_LAG_SECONDS``), the brokers take
writes to the eval topics (``trulayer_common.broker_health``), Redis and ClickHouse answer, both
loops running. Liveness (``/healthz``): neither loop died. Ingest never waits on any of this:
the engine only reads what the gateway already acknowledged (fail-open).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from eval_engine.evaluation_job import EvaluationRunner
from eval_engine.evaluators.registry import check_registry
from eval_engine.judge_client import JudgeClient
from eval_engine.request_loop import RequestLoop
from eval_engine.results import Publisher
from eval_engine.rule_matcher import RuleOutput
from eval_engine.rule_stream import rule_stream
from eval_engine.settings import EvalEngineSettings
from eval_engine.trace_store import TraceLoader
from trulayer_common import topics
from trulayer_common.broker_health import BrokerHealth, broker_health
from trulayer_common.clickhouse import ClickHouse, clickhouse_for
from trulayer_common.config import ConfigLogReader
from trulayer_common.consumer import BatchingConsumer
from trulayer_common.health import LivenessCheck, add_health_routes, task_liveness
from trulayer_common.kafka import create_producer
from trulayer_common.logging import get_logger
from trulayer_common.redis import connected_redis, redis_ok

log = get_logger(__name__)
settings_key = web.AppKey("settings", EvalEngineSettings)
reader_key = web.AppKey("config_reader", ConfigLogReader)
producer_key = web.AppKey("producer", AIOKafkaProducer)
clickhouse_key = web.AppKey("clickhouse", ClickHouse)
redis_key = web.AppKey("redis", Redis)
requests_key = web.AppKey("request_loop", RequestLoop)
rules_key = web.AppKey("rule_stream", BatchingConsumer[RuleOutput])
broker_health_key = web.AppKey("broker_health", BrokerHealth)


def _run(shared: ClickHouse | None) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[settings_key]
        reader = ConfigLogReader(settings)
        await reader.start()
        producer = create_producer(settings, client_id=f"{settings.service_name}-results")
        try:
            await producer.start()
            async with (
                broker_health(settings, [topics.EVAL_RESULTS, topics.EVAL_REQUESTS]) as health,
                connected_redis(settings.redis_url) as redis,
                clickhouse_for(
                    settings.clickhouse_url, settings.clickhouse_database, shared, settings.clickhouse_read_policy()
                ) as ch,
                aiohttp.ClientSession() as http,
            ):
                app[reader_key], app[producer_key], app[clickhouse_key], app[redis_key] = reader, producer, ch, redis
                app[broker_health_key] = health
                publisher = Publisher(producer)
                runner = EvaluationRunner(
                    settings, reader.state, TraceLoader(ch), JudgeClient(settings, http), publisher, redis
                )
                requests = RequestLoop(settings, runner, publisher)
                rules = rule_stream(settings, reader.state, producer, redis)
                await requests.start()
                try:
                    app[requests_key] = requests
                    await rules.start()
                    app[rules_key] = rules
                    log.info("eval_engine_started", judge=bool(settings.judge_base_url))
                    yield
                finally:
                    await rules.stop()
                    await requests.stop()
        finally:
            await producer.stop()
            await reader.stop()

    return ctx


def create_app(settings: EvalEngineSettings, *, clickhouse: ClickHouse | None = None) -> web.Application:
    check_registry()
    app = web.Application()
    app[settings_key] = settings
    app.cleanup_ctx.append(_run(clickhouse))

    async def config_ready() -> bool:
        reader = app.get(reader_key)
        return reader is not None and reader.is_current(settings.config_max_lag_seconds)

    async def kafka_ready() -> bool:
        health = app.get(broker_health_key)
        return health is not None and health.healthy

    async def redis_ready() -> bool:
        redis = app.get(redis_key)
        return redis is not None and await redis_ok(redis)

    async def clickhouse_ready() -> bool:
        ch = app.get(clickhouse_key)
        return ch is not None and await ch.ping()

    async def loops_ready() -> bool:
        requests, rules = app.get(requests_key), app.get(rules_key)
        return requests is not None and requests.running and rules is not None and rules.running

    def liveness(get: Callable[[], LivenessCheck | None]) -> LivenessCheck:
        def check() -> str | None:
            inner = get()
            return inner() if inner is not None else None

        return check

    add_health_routes(
        app,
        {
            "config": config_ready,
            "kafka": kafka_ready,
            "redis": redis_ready,
            "clickhouse": clickhouse_ready,
            "loops": loops_ready,
        },
        {
            "request_loop": task_liveness(lambda: r.task if (r := app.get(requests_key)) is not None else None),
            "rule_stream": task_liveness(lambda: r.task if (r := app.get(rules_key)) is not None else None),
        },
    )
    return app
