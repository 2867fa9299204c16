"""The alerter application: health routes, and the faust app running on the same event loop.

``create_app(settings)`` returns an aiohttp app whose ``cleanup_ctx`` starts, in order: the
config log reader (rules, webhooks, policies), the producer of ``trulayer.alerts`` (and of
``trulayer.signals``), the webhook dispatcher, then the faust app (``await app.start()``:
table recovery from the changelogs, then consumption from the committed offsets) and the
signals publisher (``alerter.signals``). Escalation decisions are delivered as
``policy.escalated`` webhooks (``alerter.escalations``). Stopping reverses the order; faust commits the
offsets of processed events on a clean stop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import faust
from aiohttp import web

from alerter.escalations import Escalations
from alerter.evaluator import Outcome
from alerter.publisher import AlertPublisher
from alerter.settings import AlerterSettings
from alerter.signals import SignalPublisher
from alerter.start_offsets import pin_start_offsets
from alerter.streams import AgentHealth, build_app, internal_topic_specs
from alerter.webhooks import WebhookDispatcher
from trulayer_common import topics
from trulayer_common.broker_health import BrokerHealth
from trulayer_common.config import ConfigLogReader
from trulayer_common.health import add_health_routes
from trulayer_common.kafka import create_kafka_client, create_producer, ensure_topics
from trulayer_common.logging import get_logger

log = get_logger(__name__)
settings_key = web.AppKey("settings", AlerterSettings)
reader_key = web.AppKey("config_reader", ConfigLogReader)
dispatcher_key = web.AppKey("dispatcher", WebhookDispatcher)
faust_key = web.AppKey("faust_app", faust.App)
broker_health_key = web.AppKey("broker_health", BrokerHealth)
agent_health_key = web.AppKey("agent_health", AgentHealth)


async def _run(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    secrets = settings.secret_box()  # refuses to start without CONFIG_SECRET_KEYS: deliveries are signed
    reader = ConfigLogReader(settings)
    await reader.start()
    producer = create_producer(settings, client_id=f"{settings.service_name}-alerts")
    dispatcher: WebhookDispatcher | None = None
    stream_app: faust.App | None = None
    signals: SignalPublisher | None = None
    health = BrokerHealth(
        create_kafka_client(settings, client_id=f"{settings.service_name}-health"),
        [topics.ALERTS],
        interval=settings.broker_probe_interval_seconds,
        timeout=settings.broker_probe_timeout_seconds,
        name=settings.service_name,
    )
    try:
        await health.start()
        app[broker_health_key] = health
        await producer.start()
        publisher = AlertPublisher(producer, reader.state)
        dispatcher = WebhookDispatcher(settings, publisher.record_attempt, publisher.mark_delivered, secrets)
        await dispatcher.start()
        publisher.dispatcher = dispatcher
        await ensure_topics(settings, internal_topic_specs(settings))
        if settings.alerter_start_from == "latest":
            await pin_start_offsets(settings, [topics.TRACES, topics.EVAL_RESULTS, topics.CONTROL_DECISIONS])
        escalations = Escalations(
            reader.state,
            dispatcher.submit,
            settings.escalation_cooldown_seconds,
            settings.escalation_max_age_seconds,
        )

        def on_scope(tenant_id: str, project_id: str, outcome: Outcome) -> None:
            if signals is not None:  # set below, before the agents run
                signals.observe(tenant_id, project_id, outcome)

        streams = build_app(
            settings, reader.state, publisher.publish, app[agent_health_key], on_scope, escalations.handle
        )
        signals = SignalPublisher(settings, reader.state, streams.evaluator, producer)
        stream_app = streams.app
        await stream_app.start()
        signals.start()
        app[reader_key] = reader
        app[dispatcher_key] = dispatcher
        app[faust_key] = stream_app
        log.info("alerter_started", app_id=settings.alerter_app_id)
        yield
    finally:
        if signals is not None:
            await signals.stop()
        if stream_app is not None:
            await stream_app.stop()
        if dispatcher is not None:
            await dispatcher.stop()
        await producer.stop()
        await health.stop()
        await reader.stop()


def create_app(settings: AlerterSettings) -> web.Application:
    app = web.Application()
    app[settings_key] = settings
    app[agent_health_key] = AgentHealth()
    app.cleanup_ctx.append(_run)

    async def kafka_ready() -> bool:
        health = app.get(broker_health_key)
        return health is not None and health.healthy

    async def config_ready() -> bool:
        reader = app.get(reader_key)
        return reader is not None and reader.is_current(settings.config_max_lag_seconds)

    async def streams_ready() -> bool:
        """Started, not stopping, and neither rebalancing nor restoring tables from changelogs."""
        stream_app = app.get(faust_key)
        return (
            stream_app is not None
            and bool(stream_app.started)
            and not stream_app.should_stop
            and not stream_app.rebalancing
            and not stream_app.in_recovery
        )

    add_health_routes(
        app,
        {"kafka": kafka_ready, "config": config_ready, "streams": streams_ready},
        {"agents": app[agent_health_key].liveness},
    )
    return app
