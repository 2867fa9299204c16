"""Kafka producer factory (idempotent, acks=all), consumer factory, topic creation.

Every Kafka client of every service is built here, with the cluster's security settings
(:func:`client_security`: TLS and SASL from ``ServiceSettings``), and every topic we create
gets ``KAFKA_REPLICATION_FACTOR`` replicas and ``min.insync.replicas`` (so acks=all means that
many copies, not one).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context

from trulayer_common.logging import get_logger
from trulayer_common.settings import ServiceSettings
from trulayer_common.topics import TOPICS, TopicSpec

log = get_logger(__name__)


def ssl_context(settings: ServiceSettings) -> ssl.SSLContext | None:
    """The TLS context of the Kafka clients (``None`` without TLS)."""
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context: ssl.SSLContext = create_ssl_context(
        cafile=settings.kafka_ssl_cafile, certfile=settings.kafka_ssl_certfile, keyfile=settings.kafka_ssl_keyfile
    )
    context.check_hostname = settings.kafka_ssl_check_hostname
    return context


def client_security(settings: ServiceSettings) -> dict[str, Any]:
    """The security keyword arguments of every aiokafka client (producer, consumer, admin)."""
    options: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.kafka_sasl_mechanism is not None:
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        password = settings.kafka_sasl_password
        options["sasl_plain_password"] = password.get_secret_value() if password is not None else None
    return options


def create_admin(settings: ServiceSettings, *, request_timeout_ms: int = 15_000) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        request_timeout_ms=request_timeout_ms,
        **client_security(settings),
    )


def topic_config(settings: ServiceSettings, spec: TopicSpec) -> dict[str, str]:
    """A topic's configs as created: its spec's, plus ``min.insync.replicas`` from the settings."""
    return {"min.insync.replicas": str(settings.kafka_min_insync_replicas), **spec.config}


def create_producer(settings: ServiceSettings, *, client_id: str | None = None) -> AIOKafkaProducer:
    """An idempotent producer: acks=all, so a completed send means the record is durable."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=client_id or settings.service_name,
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        max_request_size=settings.kafka_max_message_bytes,
        request_timeout_ms=10_000,
        metadata_max_age_ms=60_000,
        **client_security(settings),
    )


def create_kafka_client(settings: ServiceSettings, *, client_id: str) -> AIOKafkaClient:
    """A bare client (metadata and connections only), e.g. for the broker health probe."""
    return AIOKafkaClient(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=client_id,
        request_timeout_ms=10_000,
        metadata_max_age_ms=60_000,
        **client_security(settings),
    )


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """``consumer.stop()``, minus a quirk: when its fetcher was waiting out a broker outage,
    aiokafka re-raises the cancellation of its own fetch task from ``stop()``. That is not a
    cancellation of the caller, whose clean-up must go on; a real one still propagates."""
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
        log.warning("consumer_stop_cancelled_inside")


def create_consumer(
    settings: ServiceSettings,
    *topics: str,
    group_id: str | None,
    client_id: str | None = None,
    auto_offset_reset: str = "earliest",
) -> AIOKafkaConsumer:
    """A consumer that never auto-commits: the caller commits after its writes succeeded.

    With ``KAFKA_GROUP_INSTANCE_ID`` set (the local stack sets it), a consumer in a group is a
    static member (``<instance id>-<group id>``): restarted after a crash, it takes its
    partitions back at once instead of waiting for the dead member's session to expire. Two
    live consumers of one group must then not share a process's instance id.
    """
    instance = settings.kafka_group_instance_id
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=client_id or settings.service_name,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset=auto_offset_reset,
        max_partition_fetch_bytes=settings.kafka_max_message_bytes,
        fetch_max_bytes=max(settings.kafka_max_message_bytes, 52_428_800),
        fetch_max_wait_ms=100,
        session_timeout_ms=10_000,
        heartbeat_interval_ms=2_000,
        isolation_level="read_uncommitted",
        group_instance_id=f"{instance}-{group_id}" if instance and group_id else None,
        **client_security(settings),
    )


async def ensure_topics(settings: ServiceSettings, specs: Iterable[TopicSpec] = TOPICS) -> list[str]:
    """Create the topics that do not exist yet with their explicit partition counts, and bring
    the configs of existing ones to their spec (a changed spec applies at the next start; the
    spec replaces configs set on the topic by hand). Idempotent; returns the created topics."""
    specs = list(specs)
    admin = create_admin(settings)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # created meanwhile by another process
                await admin.create_topics(
                    [
                        NewTopic(
                            s.name,
                            num_partitions=s.partitions,
                            replication_factor=settings.kafka_replication_factor,
                            topic_configs=topic_config(settings, s),
                        )
                        for s in missing
                    ]
                )
        present = [TopicSpec(s.name, s.partitions, topic_config(settings, s)) for s in specs if s.name in existing]
        await _reconcile_configs(admin, present)
        return [s.name for s in missing]
    finally:
        await admin.close()


async def _reconcile_configs(admin: AIOKafkaAdminClient, specs: list[TopicSpec]) -> None:
    if not specs:
        return
    responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, s.name) for s in specs])
    current: dict[str, dict[str, str]] = {}
    for response in responses:
        for error_code, _message, _kind, name, entries, *_ in response.resources:
            if error_code == 0:
                current[name] = {entry[0]: entry[1] for entry in entries}
    stale = [s for s in specs if any(current.get(s.name, {}).get(k) != v for k, v in s.config.items())]
    if not stale:
        return
    answers = await admin.alter_configs(
        [ConfigResource(ConfigResourceType.TOPIC, s.name, configs=s.config) for s in stale]
    )
    failed = {res[3]: res[1] for answer in answers for res in answer.resources if res[0] != 0}
    if failed:  # not fatal: the topic works with its old configs
        log.warning("topic_configs_not_updated", errors=failed)
    log.info("topic_configs_updated", topics=[s.name for s in stale if s.name not in failed])


async def wait_for_kafka(settings: ServiceSettings, timeout: float = 30.0) -> None:
    """Fail fast at start: raise if the brokers do not answer within ``timeout`` seconds."""
    admin = create_admin(settings, request_timeout_ms=5_000)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await admin.start()
            await admin.close()
            return
        except Exception as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"Kafka at {settings.kafka_bootstrap_servers} is unreachable: {exc}") from exc
            await asyncio.sleep(0.5)


async def topic_partitions(settings: ServiceSettings, topic: str) -> list[int]:
    """The partition ids of ``topic`` (empty when it does not exist), from the brokers' metadata."""
    admin = create_admin(settings, request_timeout_ms=10_000)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    for item in described:
        if item.get("topic") == topic and not item.get("error_code"):
            return sorted(int(p["partition"]) for p in item.get("partitions", []))
    return []
