"""Four requests used to disable alerting for good (issue 15, finding 4).

Two traces with ``latency_ms`` 1e308 and two with ``cost`` 1e308 were accepted; the overflowed
window sums were stored as null in the alerter's changelogs; after a restart the evaluate agent
crashed on every record, for every tenant, while ``/healthz`` said ok. Now: the four requests
are refused at the edge; and state that is bad anyway (written by an older version, or records
produced around the gateway) is dropped and counted on restart, alerts keep firing, and an
agent that does crash turns liveness red.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiokafka import TopicPartition
from prometheus_client import REGISTRY

from tests.integration.alerting_support import Receiver, ago, receiver
from tests.integration.conftest import Harness, Tenant, eventually, trace
from tests.integration.test_alerter import SECRET, Api, fired, processed
from trulayer_common import topics
from trulayer_common.kafka import create_consumer, create_producer
from trulayer_common.topics.traces import POINTS_HEADER

CHANGELOGS = ("buckets", "meta", "fired", "baselines")


@pytest.fixture
async def hook() -> AsyncIterator[Receiver]:
    async with receiver(SECRET) as r:
        yield r


def dropped() -> dict[str, float]:
    return {
        t: REGISTRY.get_sample_value("trulayer_alerter_state_dropped_total", {"table": t}) or 0.0 for t in CHANGELOGS
    }


async def latest_entries(harness: Harness, table: str, needle: str) -> dict[bytes, tuple[int, bytes]]:
    """key → (partition, value) of the newest changelog records of ``table`` whose key holds ``needle``."""
    name = f"{harness.alerter_settings.alerter_app_id}-{table}-changelog"
    consumer = create_consumer(harness.base, group_id=None, client_id="tests-changelog-peek")
    await consumer.start()
    found: dict[bytes, tuple[int, bytes]] = {}
    try:
        partitions = [TopicPartition(name, p) for p in range(harness.alerter_settings.alerter_partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        while any([await consumer.position(tp) < end[tp] for tp in partitions]):
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                for r in records:
                    if r.key is not None and needle.encode() in r.key and r.value is not None:
                        found[r.key] = (tp.partition, r.value)
    finally:
        await consumer.stop()
    return found


async def test_four_requests_no_longer_disable_alerting_and_bad_state_is_survived(
    harness: Harness, http: aiohttp.ClientSession, tenant: Tenant, hook: Receiver
) -> None:
    await harness.start_alerter()
    api = Api(harness, http, tenant)
    await api.clear_default_rules()
    await api.webhook(hook.url)
    probe = await api.rule(name="probe", metric="volume", operator="gte", threshold=1, cooldown_minutes=1)

    # The finding's four requests: refused at the edge now (they were 201).
    for field in ("latency_ms", "latency_ms", "cost", "cost"):
        async with http.post(
            f"{harness.gateway_url}/v1/ingest", json=trace(**{field: 1e308}), headers=tenant.headers
        ) as resp:
            assert resp.status == 400, await resp.text()
            assert field in (await resp.json())["error"]

    # Normal traffic in two anomaly buckets: buckets, meta, cooldown and baselines get stored.
    await api.ingest([trace(started_at=ago(900)) for _ in range(10)])
    await processed(hook, probe, 1)
    await api.ingest([trace(started_at=ago(839)) for _ in range(10)])
    await processed(hook, probe, 2)
    await harness.stop_alerter()

    # Bad state, as an older version left it: nulls where the overflowed sums were, in every
    # table of this tenant; and a record produced around the gateway with absurd numbers.
    producer = create_producer(harness.base, client_id="tests-poison")
    await producer.start()
    try:
        poisoned: dict[str, int] = {}
        for table in CHANGELOGS:
            # Cooldown entries are keyed rule|project; the others start with the tenant.
            needle = tenant.project_id if table == "fired" else tenant.id
            for key, (partition, value) in (await latest_entries(harness, table, needle)).items():
                stored: Any = orjson.loads(value)
                bad: Any = "not-a-time"
                if isinstance(stored, dict):
                    bad = {k: None for k in stored} if table != "meta" else {**stored, "wm": "overflowed"}
                await producer.send_and_wait(
                    f"{harness.alerter_settings.alerter_app_id}-{table}-changelog",
                    key=key,
                    value=orjson.dumps(bad),
                    partition=partition,
                )
                poisoned[table] = poisoned.get(table, 0) + 1
        assert set(poisoned) == set(CHANGELOGS), poisoned
        points = {"tenant_id": tenant.id, "groups": {tenant.project_id: [[time.time() - 800, "m", 1e308, 1, 1e308]]}}
        await producer.send_and_wait(
            topics.TRACES,
            value=b'{"not": "a trace envelope"}',
            key=b"poison",
            headers=[(POINTS_HEADER, orjson.dumps(points))],
        )
    finally:
        await producer.stop()

    before = dropped()
    app = await harness.start_alerter()
    # Alerting still works after the restart: a new minute of traffic fires the probe again.
    await api.ingest([trace(started_at=ago(700)) for _ in range(10)])
    await processed(hook, probe, 3)
    assert len(fired(hook, probe)) >= 3

    async def counted() -> bool:
        now = dropped()
        return all(now[t] > before[t] for t in CHANGELOGS)

    await eventually(counted)
    async with http.get(f"{await _alerter_url(harness, app)}/healthz") as resp:
        assert resp.status == 200, await resp.text()


async def _alerter_url(harness: Harness, app: Any) -> str:
    """The harness runs the alerter without a listening site: serve its routes for the check."""
    from aiohttp import web

    from tests.integration.conftest import free_port

    runner = harness._alerter_runner
    assert runner is not None
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    return f"http://127.0.0.1:{port}"
