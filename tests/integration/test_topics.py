"""Topic creation and config reconciliation against the real broker."""

from __future__ import annotations

import uuid

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.integration.conftest import KAFKA
from trulayer_common.kafka import ensure_topics
from trulayer_common.settings import ServiceSettings
from trulayer_common.topics import TopicSpec


async def _configs(name: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:
        (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
        (resource,) = response.resources
        return {entry[0]: entry[1] for entry in resource[4]}
    finally:
        await admin.close()


async def test_topics_are_created_then_their_configs_follow_the_spec():
    settings = ServiceSettings(kafka_bootstrap_servers=KAFKA)
    name = f"test.topics.{uuid.uuid4().hex[:8]}"
    first = TopicSpec(name, 2, {"cleanup.policy": "compact"})
    assert await ensure_topics(settings, [first]) == [name]
    assert (await _configs(name))["segment.bytes"] == str(1024**3)  # the broker's default

    changed = TopicSpec(name, 2, {"cleanup.policy": "compact", "segment.bytes": str(8 * 1024 * 1024)})
    assert await ensure_topics(settings, [changed]) == []  # not created again
    configs = await _configs(name)
    assert (configs["cleanup.policy"], configs["segment.bytes"]) == ("compact", str(8 * 1024 * 1024))
    assert await ensure_topics(settings, [changed]) == []  # idempotent
