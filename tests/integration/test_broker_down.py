"""A broker that cannot acknowledge → 503 with Retry-After, never a 2xx, and ``/readyz`` 503 while
it is gone (``/healthz`` stays 200: unready, not dead); ingest and readiness resume after.

Runs its own private Kafka (a third set of ports) so stopping it cannot disturb other tests.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from control_engine.config_log import ConfigLogWriter
from control_engine.tenants import create_tenant
from gateway.resources import config_state
from gateway.settings import GatewaySettings
from tests.integration.conftest import DATA_DIR, REPO, Harness, eventually, free_port, trace
from trulayer_common.config import hash_api_key
from trulayer_common.kafka import create_producer, ensure_topics
from trulayer_local import infra


async def test_broker_down_is_503_with_retry_after(http: aiohttp.ClientSession, harness: Harness):
    cfg = infra.InfraConfig(
        repo_root=REPO,
        data_dir=DATA_DIR / "kafka-outage",
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        redis_port=free_port(),
    )
    await asyncio.to_thread(infra.start_kafka, cfg)
    try:
        settings = GatewaySettings(
            kafka_bootstrap_servers=cfg.bootstrap_servers,
            redis_url=harness.base.redis_url,
            clickhouse_url=harness.base.clickhouse_url,
            produce_timeout_seconds=2.0,
        )
        await ensure_topics(settings)
        producer = create_producer(settings, client_id="tests-outage")
        await producer.start()
        created = await create_tenant(ConfigLogWriter(producer), "outage", "pro")
        await producer.stop()
        app, runner, url = await harness.start_gateway(settings)
        headers = {"X-Api-Key": created.secret}
        try:
            await eventually(lambda: _known(app, created.secret))
            async with http.post(f"{url}/v1/ingest", json=trace(), headers=headers) as resp:
                assert resp.status == 201

            async with http.get(f"{url}/readyz") as resp:
                assert resp.status == 200
            stopped = time.monotonic()
            await asyncio.to_thread(infra.stop_kafka, cfg)

            async def not_ready() -> bool:
                async with http.get(f"{url}/readyz") as resp:
                    return resp.status == 503 and (await resp.json())["checks"]["kafka"] is False

            await eventually(not_ready, timeout=20)
            print(f"\n/readyz 503 {time.monotonic() - stopped:.2f}s after the broker stopped")
            async with http.post(f"{url}/v1/ingest", json=trace(), headers=headers) as resp:
                assert resp.status == 503
                assert int(resp.headers["Retry-After"]) >= 1
                body = await resp.json()
                assert body["code"] == "unavailable"
                assert body["retry_after_seconds"] >= 1
                assert body["request_id"] == resp.headers["X-Request-Id"]
            async with http.get(f"{url}/healthz") as resp:  # unready, not dead
                assert resp.status == 200

            await asyncio.to_thread(infra.start_kafka, cfg)

            async def accepted_again() -> bool:
                async with http.post(f"{url}/v1/ingest", json=trace(), headers=headers) as resp:
                    return resp.status == 201

            await eventually(accepted_again, timeout=60, interval=0.5)

            async def ready_again() -> bool:
                async with http.get(f"{url}/readyz") as resp:
                    return resp.status == 200

            await eventually(ready_again, timeout=20)
        finally:
            await runner.cleanup()
    finally:
        await asyncio.to_thread(infra.stop_kafka, cfg)


async def _known(app, secret: str) -> bool:  # type: ignore[no-untyped-def]
    return app[config_state].key_by_hash(hash_api_key(secret)) is not None
