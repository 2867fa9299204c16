"""``trulayer tenants create`` prints an owner key that the gateway accepts."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import aiohttp

from tests.integration.conftest import KAFKA, Harness, eventually, trace

BIN = Path(sys.executable).parent


async def run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "trulayer"),
        *args,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": KAFKA},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_tenants_create_prints_a_working_key(http: aiohttp.ClientSession, harness: Harness):
    code, out, err = await run_cli("tenants", "create", "--name", "acme", "--plan", "starter", "--json")
    assert code == 0, err
    created = json.loads(out)
    assert created["api_key"].startswith("tl_") and len(created["api_key"]) >= 35
    assert created["plan"] == "starter"
    headers = {"X-Api-Key": created["api_key"]}

    async def accepted() -> bool:
        async with http.post(f"{harness.gateway_url}/v1/ingest", json=trace(), headers=headers) as resp:
            return resp.status == 201

    await eventually(accepted, timeout=10)

    code, out, _ = await run_cli("tenants", "create", "--name", "text-output")
    assert code == 0
    assert "api key tl_" in out


async def test_tenants_create_rejects_unknown_plan():
    code, _, err = await run_cli("tenants", "create", "--name", "x", "--plan", "platinum")
    assert code == 2
    assert "invalid choice" in err
