"""The local stack as ``make up`` runs it: a real ``trulayer-local up`` process, stopped with
Ctrl-C and started again on the same data: what was ingested before is still there.

Uses its own data directory and ports, so it runs beside the test session's infrastructure.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import aiohttp

from tests.integration.conftest import DATA_DIR, REPO, eventually, free_port, trace

BIN = Path(sys.executable).parent


async def start_stack(env: dict[str, str]) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "trulayer-local"),
        "up",
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    output = []
    try:
        async with asyncio.timeout(180):
            while True:
                line = (await proc.stdout.readline()).decode()
                if not line:
                    raise AssertionError("stack exited early:\n" + "".join(output))
                output.append(line)
                if "Press Ctrl-C" in line:
                    break
    except TimeoutError:
        proc.kill()
        raise AssertionError("stack did not come up:\n" + "".join(output)) from None
    return proc, "".join(output)


async def stop_stack(proc: asyncio.subprocess.Process) -> str:
    proc.send_signal(signal.SIGINT)
    assert proc.stdout is not None
    rest, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, rest.decode()
    return rest.decode()


async def test_restarted_stack_keeps_its_data(http: aiohttp.ClientSession):
    data = DATA_DIR / "local-stack"
    gateway_port = free_port()
    env = {
        **os.environ,
        "TRULAYER_DATA_DIR": str(data),
        "TRULAYER_KAFKA_PORT": str(free_port()),
        "TRULAYER_KAFKA_CONTROLLER_PORT": str(free_port()),
        "TRULAYER_REDIS_PORT": str(free_port()),
        "GATEWAY_PORT": str(gateway_port),
        "CONTROL_PORT": str(free_port()),
        "WORKER_PORT": str(free_port()),
        "ALERTER_PORT": str(free_port()),
        "EVAL_ENGINE_PORT": str(free_port()),
        "LOG_LEVEL": "WARNING",
    }
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "CLICKHOUSE_URL"):
        env.pop(name, None)
    url = f"http://127.0.0.1:{gateway_port}"

    proc, banner = await start_stack(env)
    try:
        key = json.loads((data / "bootstrap.json").read_text())["api_key"]
        assert key in banner and url in banner
        headers = {"Authorization": f"Bearer {key}"}
        traces = [trace() for _ in range(25)]
        async with http.post(f"{url}/v1/ingest/batch", json={"traces": traces}, headers=headers) as resp:
            assert resp.status == 201

        async def counted() -> bool:
            async with http.get(f"{url}/v1/metrics", params={"hours": "1"}, headers=headers) as resp:
                return (await resp.json())["total_traces"] == 25

        await eventually(counted, timeout=30)
    finally:
        stopped = await stop_stack(proc)
    assert "stopping Kafka and Redis" in stopped

    proc, banner = await start_stack(env)
    try:
        assert key in banner  # the bootstrap tenant is reused, not created again
        async with http.get(f"{url}/v1/traces/{traces[7]['id']}", headers=headers) as resp:
            assert resp.status == 200
            assert (await resp.json())["id"] == traces[7]["id"]
        async with http.get(f"{url}/v1/metrics", params={"hours": "1"}, headers=headers) as resp:
            assert (await resp.json())["total_traces"] == 25
    finally:
        await stop_stack(proc)
