"""A replica that lost the config log (issue 15, finding 12).

Before: a gateway whose reader could no longer reach Kafka kept honouring every key it knew,
revoked ones included, for as long as it ran, and stayed ready; ``reader.sync`` timeouts were
500s. Now readiness turns false beyond ``CONFIG_MAX_LAG_SECONDS``, authentication fails closed
(503 ``auth_unavailable``) beyond ``CONFIG_MAX_STALENESS_SECONDS``, and a sync that cannot
complete is a 503. Runs its own Kafka so that stopping it disturbs no other test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from control_engine.app import create_app as create_control_engine
from control_engine.config_log import ConfigLogWriter
from control_engine.tenants import create_tenant
from gateway.resources import config_state
from tests.integration.conftest import DATA_DIR, INTERNAL_TOKEN, REPO, Harness, eventually, free_port
from trulayer_common.config import hash_api_key
from trulayer_common.kafka import create_producer, ensure_topics
from trulayer_common.principal import INTERNAL_TOKEN_HEADER, ForwardedPrincipal
from trulayer_local import infra


@pytest.fixture
async def private_kafka() -> AsyncIterator[infra.InfraConfig]:
    cfg = infra.InfraConfig(
        repo_root=REPO,
        data_dir=DATA_DIR / "kafka-staleness",
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        redis_port=free_port(),
    )
    await asyncio.to_thread(infra.start_kafka, cfg)
    try:
        yield cfg
    finally:
        await asyncio.to_thread(infra.stop_kafka, cfg)


async def test_a_gateway_that_lost_the_config_log_fails_closed_and_is_not_ready(
    http: aiohttp.ClientSession, harness: Harness, private_kafka: infra.InfraConfig
) -> None:
    settings = harness.gateway_settings.model_copy(
        update={
            "kafka_bootstrap_servers": private_kafka.bootstrap_servers,
            "config_max_lag_seconds": 2.0,
            "config_max_staleness_seconds": 4.0,
        }
    )
    await ensure_topics(settings)
    producer = create_producer(settings, client_id="tests-staleness")
    await producer.start()
    created = await create_tenant(ConfigLogWriter(producer), "stale", "pro")
    await producer.stop()
    app, runner, url = await harness.start_gateway(settings)
    headers = {"X-Api-Key": created.secret}
    try:

        async def known() -> bool:
            return app[config_state].key_by_hash(hash_api_key(created.secret)) is not None

        await eventually(known)
        async with http.get(f"{url}/v1/traces", headers=headers) as resp:
            assert resp.status == 200
        async with http.get(f"{url}/readyz") as resp:
            assert (await resp.json())["checks"]["config"] is True

        await asyncio.to_thread(infra.stop_kafka, private_kafka)

        async def not_ready() -> bool:
            async with http.get(f"{url}/readyz") as resp:
                return resp.status == 503 and (await resp.json())["checks"]["config"] is False

        await eventually(not_ready, timeout=20)

        async def closed() -> dict[str, object] | None:
            async with http.get(f"{url}/v1/traces", headers=headers) as resp:
                if resp.status != 503:
                    return None
                assert resp.headers["Retry-After"] == "5"
                return dict(await resp.json())

        body = await eventually(closed, timeout=20)
        assert body["code"] == "auth_unavailable"
        async with http.get(f"{url}/healthz") as resp:
            assert resp.status == 200  # stale, not dead: nothing to restart

        await asyncio.to_thread(infra.start_kafka, private_kafka)

        async def open_again() -> bool:
            async with http.get(f"{url}/v1/traces", headers=headers) as resp:
                return resp.status == 200

        await eventually(open_again, timeout=60, interval=0.5)
    finally:
        await runner.cleanup()


async def test_a_config_sync_that_cannot_complete_is_503_not_500(
    http: aiohttp.ClientSession, harness: Harness, private_kafka: infra.InfraConfig
) -> None:
    settings = harness.control_settings.model_copy(
        update={"kafka_bootstrap_servers": private_kafka.bootstrap_servers, "config_sync_timeout_seconds": 1.0}
    )
    await ensure_topics(settings)
    producer = create_producer(settings, client_id="tests-sync")
    await producer.start()
    created = await create_tenant(ConfigLogWriter(producer), "sync", "pro")
    await producer.stop()
    app = create_control_engine(settings, clickhouse=harness.clickhouse)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    principal = ForwardedPrincipal(
        tenant_id=created.tenant.id,
        kind="session",
        role="owner",
        actor="user:tests",
        api_key_id=None,
        scopes=frozenset(),
    )
    headers = {**principal.to_headers(), INTERNAL_TOKEN_HEADER: INTERNAL_TOKEN}
    try:
        async with http.get(f"http://127.0.0.1:{port}/v1/webhooks", headers=headers) as resp:
            assert resp.status == 200, await resp.text()
        await asyncio.to_thread(infra.stop_kafka, private_kafka)
        async with http.get(f"http://127.0.0.1:{port}/v1/webhooks", headers=headers) as resp:
            body = await resp.json()
            assert resp.status == 503, body
        assert body["code"] == "config_unavailable" and "Retry-After" in resp.headers
        # Back, so the control-engine's consumers stop cleanly (aiokafka's stop while the broker is
        # gone surfaces a CancelledError from its fetcher: a shutdown matter, not this test's).
        await asyncio.to_thread(infra.start_kafka, private_kafka)
    finally:
        await runner.cleanup()
