"""Topic records against the real stores: the alerts record kinds and their tables have the same
fields, and the example consumer of docs/topics.md reads live traces with its own group."""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.integration.conftest import KAFKA, REPO, Harness, Tenant, eventually, trace
from trulayer_common.kafka import topic_partitions
from trulayer_common.topics import alerts, traces


@pytest.mark.parametrize("kind", sorted(alerts.TABLES))
async def test_alert_record_fields_are_the_columns_of_their_table(harness: Harness, kind: str) -> None:
    """A renamed field or column would silently drop data (unknown fields are skipped on insert)."""
    ch = harness.clickhouse
    columns = await ch.query(f"DESCRIBE TABLE {ch.database}.{alerts.TABLES[kind]}")
    fields = set(alerts.RECORD_TYPES[kind].__annotations__) - {"kind"}
    assert fields == {c["name"] for c in columns}


async def test_example_consumer_reads_live_traces_with_its_own_group(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant
) -> None:
    group = f"tests-team-{uuid.uuid4().hex[:8]}"
    example = await asyncio.create_subprocess_exec(
        sys.executable,
        "-u",
        str(REPO / "examples" / "trace_consumer.py"),
        "--bootstrap",
        KAFKA,
        "--group",
        group,
        stdout=asyncio.subprocess.PIPE,
    )
    assert example.stdout is not None
    lines: list[str] = []

    async def read() -> None:
        assert example.stdout is not None
        while line := await example.stdout.readline():
            lines.append(line.decode())

    reader = asyncio.create_task(read())
    sent: list[str] = []
    try:

        async def seen() -> list[str]:
            # The group starts at the end of the topic once it has joined: send until it sees one.
            body = trace(model="example-model")
            async with http.post(f"{harness.gateway_url}/v1/ingest", json=body, headers=tenant.headers) as resp:
                assert resp.status == 201
            sent.append(body["id"])
            return [line for line in lines if tenant.id in line and any(i in line for i in sent)]

        (line,) = (await eventually(seen, timeout=60, interval=0.5))[:1]
        assert "model=example-model" in line and tenant.project_id in line
    finally:
        example.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(example.wait(), 30) == 0
        await reader
    # Our own writer stored every trace: the team's group took nothing away from it.
    await eventually(lambda: _stored(harness, tenant, set(sent)), timeout=30)
    # ...and the team's group has offsets of its own.
    consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await topic_partitions(harness.base, traces.TOPIC)
        committed = [await consumer.committed(TopicPartition(traces.TOPIC, p)) for p in partitions]
    finally:
        await consumer.stop()
    assert any(offset for offset in committed)


async def _stored(harness: Harness, tenant: Tenant, ids: set[str]) -> bool:
    return ids <= {r["id"] for r in await harness.stored_traces(tenant.id)}
