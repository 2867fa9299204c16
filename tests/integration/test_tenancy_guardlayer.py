"""GuardLayer compatibility: off by default; when on, key creation and the /api/v1 aliases."""

from __future__ import annotations

import aiohttp

from gateway.resources import config_state
from tests.integration.conftest import Harness, eventually, trace
from trulayer_common.config import hash_api_key


async def test_off_by_default(http: aiohttp.ClientSession, harness: Harness):
    async with http.post(f"{harness.gateway_url}/api/v1/api-keys", json={"customer_name": "x"}) as resp:
        assert resp.status == 404


async def test_create_key_and_use_the_aliases(http: aiohttp.ClientSession, harness: Harness):
    settings = harness.gateway_settings.model_copy(update={"guardlayer_compat": True})
    app, runner, url = await harness.start_gateway(settings)
    try:
        async with http.post(f"{url}/api/v1/api-keys", json={"customer_name": "my-app-production"}) as resp:
            assert resp.status == 201
            created = await resp.json()
        assert created["api_key"].startswith("tl_")
        assert created["customer_name"] == "my-app-production"
        async with http.post(f"{url}/api/v1/api-keys", json={}) as resp:
            assert resp.status == 422
        state = app[config_state]

        async def known() -> bool:
            return state.key_by_hash(hash_api_key(created["api_key"])) is not None

        await eventually(known)
        headers = {"X-Api-Key": created["api_key"]}
        call = {"model": "gpt-4", "latency_ms": 850, "tokens_in": 120, "tokens_out": 45, "cost_usd": 0.0042}
        async with http.post(f"{url}/api/v1/ingest", json=call, headers=headers) as resp:
            assert resp.status == 201
            assert "X-RateLimit-Limit" in resp.headers
        async with http.post(f"{url}/api/v1/ingest/batch", json={"calls": [call, call]}, headers=headers) as resp:
            assert resp.status == 201
            assert (await resp.json())["ingested"] == 2
        async with http.get(f"{url}/api/v1/metrics?hours=1", headers=headers) as resp:
            assert resp.status == 200
        assert created["default_alerts_created"] == 3
        async with http.get(f"{url}/api/v1/alerts", headers=headers) as resp:
            assert resp.status == 200
            rules = (await resp.json())["rules"]
        assert sorted(r["metric"] for r in rules) == ["cost_per_call", "error_rate", "latency_p95"]
        async with http.post(f"{url}/api/v1/ingest", json=trace()) as resp:
            assert resp.status == 401
    finally:
        await runner.cleanup()
