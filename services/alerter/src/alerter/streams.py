"""The faust application: agents, the internal observations topic and the changelogged tables.

Topology::

    trulayer.traces ──route_traces──┐
                                    ├─► <app>-observations (keyed tenant|project) ──evaluate──► tables
    trulayer.eval.results ─route_evals┘                                             └─► alerts, webhooks

Re-keying by ``tenant|project`` puts every record of a project on one partition, so its
tables (written while processing that partition) are changelogged to the same partition and
restored together after a restart or a rebalance. Offsets are committed by faust once an
event is processed (at-least-once); the cooldown table entry is flushed to its changelog
*before* the alert leaves, so a replay after a crash finds the rule in cooldown.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
from prometheus_client import Counter

from alerter.evaluator import Evaluator, Outcome
from alerter.observations import (
    checked_observation,
    observations_from_evaluations,
    observations_from_points,
    observations_from_traces,
)
from alerter.settings import AlerterSettings
from trulayer_common import topics
from trulayer_common.config import ConfigState
from trulayer_common.kafka import ssl_context
from trulayer_common.logging import get_logger
from trulayer_common.topics import InvalidRecordError, TopicSpec, control_decisions, traces

log = get_logger(__name__)
SKIPPED = Counter("trulayer_alerter_records_skipped_total", "input records the alerter could not read", ["topic"])
FIRED = Counter("trulayer_alerter_alerts_fired_total", "alert rule firings")
ANOMALIES = Counter("trulayer_alerter_anomalies_total", "anomalies detected", ["type"])
AGENT_CRASHES = Counter("trulayer_alerter_agent_crashes_total", "faust agent crashes", ["agent"])

TABLES = ("buckets", "meta", "fired", "baselines")
_MIB = 1024 * 1024
# Observations are consumed within seconds; the state lives in the changelogs. Segments are
# small so that retention can drop them (it never deletes the segment being written).
OBSERVATIONS_CONFIG = {"retention.ms": str(6 * 3600 * 1000), "segment.bytes": str(64 * _MIB), "segment.ms": "600000"}
# A table is restored at start by reading its changelog, and compaction never touches the
# segment being written: with Kafka's default 1 GiB / 7 d segments every update of every
# bucket was replayed (50 s of start-up after an hour of load). Small segments, compacted
# eagerly, keep the changelog near the live state (the buckets of the longest window).
CHANGELOG_CONFIG = {
    "cleanup.policy": "compact",
    "segment.bytes": str(8 * _MIB),
    "segment.ms": "300000",
    "min.cleanable.dirty.ratio": "0.1",
}
OutcomeHandler = Callable[[Outcome], Awaitable[None]]
ScopeHandler = Callable[[str, str, Outcome], None]
DecisionHandler = Callable[[bytes], Any]
AgentBody = Callable[[Any], Awaitable[None]]


@dataclass(frozen=True)
class Streams:
    app: faust.App
    evaluator: Evaluator


def _brokers(bootstrap: str) -> list[str]:
    return [f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip()]


def observations_topic_name(settings: AlerterSettings) -> str:
    return f"{settings.alerter_app_id}-observations"


def internal_topic_specs(settings: AlerterSettings) -> list[TopicSpec]:
    """The observations topic and the tables' changelogs, created before faust joins its group
    (a topic missing from the first assignment or the client's metadata is a crash in faust)."""
    partitions = settings.alerter_partitions
    specs = [TopicSpec(observations_topic_name(settings), partitions, OBSERVATIONS_CONFIG)]
    specs += [
        TopicSpec(f"{settings.alerter_app_id}-{table}-changelog", partitions, CHANGELOG_CONFIG) for table in TABLES
    ]
    return specs


class AgentHealth:
    """Whether every agent is still doing its job: the first crash (faust restarts the actor, but
    an agent that crashes once on bad state crashes again on the next record) turns the alerter's
    liveness red, so the process is restarted and the crash is visible instead of alerting going
    quiet while ``/healthz`` says ok."""

    def __init__(self) -> None:
        self.crash: str | None = None

    def watched(self, fun: AgentBody) -> AgentBody:
        """The agent body, reporting an exception that ends it before faust restarts it."""

        @functools.wraps(fun)
        async def agent(stream: Any) -> None:
            try:
                await fun(stream)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                name = fun.__name__
                AGENT_CRASHES.labels(name).inc()
                log.error("alerter_agent_crashed", agent=name, error=repr(exc))
                if self.crash is None:
                    self.crash = f"agent {name} crashed: {type(exc).__name__}: {exc}"[:500]
                raise

        return agent

    def liveness(self) -> str | None:
        return self.crash


def broker_credentials(settings: AlerterSettings) -> faust.types.auth.CredentialsT | None:
    """faust's form of the Kafka security settings (the other clients use ``client_security``)."""
    context = ssl_context(settings)
    if settings.kafka_sasl_mechanism is not None:
        password = settings.kafka_sasl_password
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=password.get_secret_value() if password is not None else None,
            ssl_context=context,
            mechanism=settings.kafka_sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def build_app(
    settings: AlerterSettings,
    config: ConfigState,
    on_outcome: OutcomeHandler,
    health: AgentHealth,
    on_scope: ScopeHandler | None = None,
    on_escalations: DecisionHandler | None = None,
) -> Streams:
    """A faust app bound to the running loop, its web server off; start it with ``await app.start()``.
    Its evaluator comes along: the signals publisher reads the windows it keeps.

    ``on_scope(tenant, project, outcome)`` sees every processed observation (the signals
    publisher); ``on_escalations(value)`` every ``trulayer.control.decisions`` record marked as
    holding an escalation."""
    data_dir = Path(settings.alerter_data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.alerter_app_id,
        broker=_brokers(settings.kafka_bootstrap_servers),
        store="memory://",
        datadir=str(data_dir),
        web_enabled=False,
        topic_partitions=settings.alerter_partitions,
        topic_replication_factor=settings.kafka_replication_factor,
        broker_credentials=broker_credentials(settings),
        # A new group's start is pinned beforehand (start_offsets); a reset reads, never skips.
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        # Static membership, as every other consumer group here (KAFKA_GROUP_INSTANCE_ID): a
        # restart after kill -9 takes the partitions back at once instead of waiting out the
        # dead member's session (faust's default is 60 s, during which the alerter was not
        # started, and a broker restart in that window left its start hanging).
        consumer_group_instance_id=(
            f"{settings.kafka_group_instance_id}-{settings.alerter_app_id}"
            if settings.kafka_group_instance_id
            else None
        ),
        broker_session_timeout=10.0,
        producer_acks=-1,
        loop=asyncio.get_running_loop(),
    )
    trace_records = app.topic(
        traces.TOPIC, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    evals = app.topic(
        topics.EVAL_RESULTS, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    observations = app.topic(
        observations_topic_name(settings),
        key_serializer="raw",
        value_serializer="json",
        partitions=settings.alerter_partitions,
        internal=True,
    )
    buckets = app.Table("buckets", default=None, partitions=settings.alerter_partitions)
    meta = app.Table("meta", default=None, partitions=settings.alerter_partitions)
    fired = app.Table("fired", default=None, partitions=settings.alerter_partitions)
    baselines = app.Table("baselines", default=None, partitions=settings.alerter_partitions)
    evaluator = Evaluator(settings, config, buckets, meta, fired, baselines)

    async def forward(groups: dict[str, dict[str, Any]]) -> None:
        for key, message in groups.items():
            await observations.send(key=key.encode(), value=message)

    @app.agent(trace_records)
    @health.watched
    async def route_traces(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            try:
                # The gateway's summary header spares parsing the record; others are parsed.
                header = (event.headers or {}).get(traces.POINTS_HEADER)
                await forward(observations_from_points(header) if header else observations_from_traces(event.value))
            except InvalidRecordError as exc:
                SKIPPED.labels(topics.TRACES).inc()
                log.warning("trace_record_skipped", error=str(exc))

    @app.agent(evals)
    @health.watched
    async def route_evals(stream: faust.StreamT[bytes]) -> None:
        async for value in stream:
            try:
                await forward(observations_from_evaluations(value))
            except InvalidRecordError as exc:
                SKIPPED.labels(topics.EVAL_RESULTS).inc()
                log.warning("evaluation_record_skipped", error=str(exc))

    decisions = app.topic(
        control_decisions.TOPIC, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )

    @app.agent(decisions)
    @health.watched
    async def route_escalations(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            if on_escalations is None or (event.headers or {}).get(control_decisions.ESCALATE_HEADER) != b"1":
                continue
            try:
                on_escalations(event.value)
            except InvalidRecordError as exc:
                SKIPPED.labels(topics.CONTROL_DECISIONS).inc()
                log.warning("decision_record_skipped", error=str(exc))

    @app.agent(observations)
    @health.watched
    async def evaluate(stream: faust.StreamT[dict[str, Any]]) -> None:
        async for message in stream:
            try:
                observation = checked_observation(message)
            except InvalidRecordError as exc:
                SKIPPED.labels(observations_topic_name(settings)).inc()
                log.warning("observation_skipped", error=str(exc))
                continue
            outcome = evaluator.process(observation)
            if on_scope is not None:
                on_scope(observation["tenant_id"], observation["project_id"], outcome)
            if outcome.alerts or outcome.anomalies:
                FIRED.inc(len(outcome.alerts))
                for anomaly in outcome.anomalies:
                    ANOMALIES.labels(anomaly["type"]).inc()
                # The cooldown must be durable before anyone is told: flush the changelog.
                await app.producer.flush()
                await on_outcome(outcome)

    return Streams(app, evaluator)
