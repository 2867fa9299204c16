"""The ingest-worker: killed mid-stream loses and duplicates nothing; a clean stop drains; poison
records go to the dead-letter topic."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.integration.conftest import KAFKA, Harness, Tenant, eventually, trace
from trulayer_common import topics
from trulayer_common.kafka import create_producer, topic_partitions


async def test_killed_worker_stores_every_acknowledged_trace_exactly_once(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant
):
    acknowledged: list[str] = []
    stop_sending = asyncio.Event()

    async def send() -> None:
        while not stop_sending.is_set():
            batch = [trace() for _ in range(20)]
            async with http.post(
                f"{harness.gateway_url}/v1/ingest/batch", json={"traces": batch}, headers=tenant.headers
            ) as resp:
                if resp.status == 201:
                    acknowledged.extend((await resp.json())["ids"])
            await asyncio.sleep(0.01)

    sender = asyncio.create_task(send())
    await eventually(lambda: _at_least(harness, tenant, 100))  # the worker is mid-stream
    await harness.worker.abort()  # no flush, no commit: a crash
    sent_before_restart = len(acknowledged)
    await eventually(lambda: _async(len(acknowledged) >= sent_before_restart + 100))  # ingest goes on
    await harness.restart_worker()
    await asyncio.sleep(0.5)
    stop_sending.set()
    await sender

    async def all_stored() -> int | None:
        rows = await harness.stored_traces(tenant.id)
        return len(rows) if len(rows) == len(acknowledged) else None

    await eventually(all_stored, timeout=60)
    rows = await harness.stored_traces(tenant.id)
    assert sorted(r["id"] for r in rows) == sorted(acknowledged)
    assert len(set(acknowledged)) == len(acknowledged)
    async with http.get(f"{harness.gateway_url}/v1/metrics", params={"hours": "1"}, headers=tenant.headers) as resp:
        assert (await resp.json())["total_traces"] == len(acknowledged)


async def _at_least(harness: Harness, tenant: Tenant, n: int) -> bool:
    return len(await harness.stored_traces(tenant.id)) >= n


async def _async(value: bool) -> bool:
    return value


async def test_clean_stop_writes_and_commits_the_pending_batch(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant
):
    await harness.worker.stop()
    worker = await harness.restart_worker(batch_max_wait_ms=600_000, batch_max_traces=1_000_000)
    try:
        batch = [trace() for _ in range(30)]
        async with http.post(
            f"{harness.gateway_url}/v1/ingest/batch", json={"traces": batch}, headers=tenant.headers
        ) as resp:
            assert resp.status == 201
        await eventually(lambda: _async(worker.pending >= 30))
        assert await harness.stored_traces(tenant.id) == []  # held back by the 10-minute window
        await worker.stop()  # what SIGTERM does
        assert len(await harness.stored_traces(tenant.id)) == 30
        # ...and committed: the group's offsets are at the end of every partition.
        consumer = AIOKafkaConsumer(
            bootstrap_servers=KAFKA, group_id=harness.worker_settings.worker_group_id, enable_auto_commit=False
        )
        await consumer.start()
        try:
            partitions = [TopicPartition(topics.TRACES, p) for p in await topic_partitions(harness.base, topics.TRACES)]
            ends = await consumer.end_offsets(partitions)
            for tp in partitions:
                assert (await consumer.committed(tp) or 0) == ends[tp]
        finally:
            await consumer.stop()
    finally:
        await harness.restart_worker()


async def test_poison_record_goes_to_the_dead_letter_topic(harness: Harness, tenant: Tenant):
    dlq = AIOKafkaConsumer(bootstrap_servers=KAFKA, enable_auto_commit=False)
    await dlq.start()
    producer = create_producer(harness.base, client_id="tests-poison")
    await producer.start()
    try:
        tp = TopicPartition(topics.DLQ, 0)
        dlq.assign([tp])
        await dlq.seek_to_end(tp)
        marker = uuid.uuid4().hex.encode()
        poison = b'{"schema_version": 1, "this is": "not an envelope", "marker": "' + marker + b'"}'
        await producer.send_and_wait(topics.TRACES, value=poison, key=marker)
        found = None
        deadline = asyncio.get_running_loop().time() + 20
        while found is None and asyncio.get_running_loop().time() < deadline:
            for records in (await dlq.getmany(timeout_ms=500)).values():
                for record in records:
                    if record.key == marker:
                        found = record
        assert found is not None, "poison record not dead-lettered"
        assert found.value == poison
        headers = dict(found.headers)
        assert b"not a trace envelope" in headers["error"]
        assert headers["source_topic"] == topics.TRACES.encode()
        # The worker went on: a valid trace sent after the poison is stored.
    finally:
        await producer.stop()
        await dlq.stop()
    assert harness.worker.running


def _envelope(tenant: Tenant, trace_id: str, **trace_fields: object) -> bytes:
    return orjson.dumps(
        {
            "schema_version": 1,
            "tenant_id": tenant.id,
            "project_id": tenant.project_id,
            "received_at": "2026-11-22T00:00:00Z",
            "request_id": "test",
            "payload": {
                "traces": [
                    {
                        "id": trace_id,
                        "project_id": tenant.project_id,
                        "started_at": "2026-11-22T00:00:00Z",
                        **trace_fields,
                    }
                ]
            },
        }
    )


async def test_record_refused_by_clickhouse_is_isolated_and_its_batch_stored(harness: Harness, tenant: Tenant):
    """A record that parses but that the engine refuses must not stall the partition."""
    dlq = AIOKafkaConsumer(bootstrap_servers=KAFKA, enable_auto_commit=False)
    await dlq.start()
    producer = create_producer(harness.base, client_id="tests-refused")
    await producer.start()
    try:
        tp = TopicPartition(topics.DLQ, 0)
        dlq.assign([tp])
        await dlq.seek_to_end(tp)
        bad_key = uuid.uuid4().hex.encode()
        # Same key → same partition → same batch as the good records around it.
        await producer.send_and_wait(topics.TRACES, value=_envelope(tenant, "good-1"), key=bad_key)
        await producer.send_and_wait(topics.TRACES, value=_envelope(tenant, "bad", latency_ms="soon"), key=bad_key)
        await producer.send_and_wait(topics.TRACES, value=_envelope(tenant, "good-2"), key=bad_key)

        async def good_stored() -> list[str]:
            ids = sorted(r["id"] for r in await harness.stored_traces(tenant.id))
            return ids if ids == ["good-1", "good-2"] else []

        await eventually(good_stored, timeout=30)
        found = None
        deadline = asyncio.get_running_loop().time() + 20
        while found is None and asyncio.get_running_loop().time() < deadline:
            for records in (await dlq.getmany(timeout_ms=500)).values():
                found = next((r for r in records if r.key == bad_key), found)
        assert found is not None
        assert b'"bad"' in found.value
        assert dict(found.headers)["error"].startswith(b"refused by ClickHouse")
    finally:
        await producer.stop()
        await dlq.stop()
    assert harness.worker.running
