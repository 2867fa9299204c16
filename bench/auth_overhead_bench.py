"""What rate limiting costs: gateway requests/s with the limits on vs off.

Starts the gateway alone (``python -m gateway``, its own process and event loop) twice per
round against the same Kafka and Redis, and drives the same load each time from this process:

1. ``on``         API-key auth + rate limits + monthly quota (the production configuration);
2. ``no-limits``  API-key auth, ``LIMITS_ENABLED=false``.

Authentication always runs (there is no switch to turn it off): it is an in-memory lookup by
key hash, which the malformed-body figures bound from above.

The endpoint is ``POST /v1/ingest``, twice per mode: with valid traces (the hot path: one
Kafka produce with acks=all per request) and with a malformed body, answered 400 after auth
and limits but before Kafka, which shows their cost undiluted. (Read endpoints are dominated
by ClickHouse and would hide it.)

The tenant gets a per-tenant ``ingest_requests_per_minute`` override high enough never to refuse,
so the limiter does all its work but every request is a 201.

Environment: BENCH_KAFKA (127.0.0.1:9092), BENCH_REDIS (redis://127.0.0.1:6379/0),
BENCH_SECONDS (15 per mode and round), BENCH_ROUNDS (3), BENCH_CLIENTS (32 concurrent requests),
BENCH_WARMUP_SECONDS (5).
"""

from __future__ import annotations

import asyncio
import os
import platform
import secrets
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import orjson

REPO = Path(__file__).resolve().parents[1]
KAFKA = os.environ.get("BENCH_KAFKA", "127.0.0.1:9092")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
SECONDS = float(os.environ.get("BENCH_SECONDS", "15"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "32"))
WARMUP = float(os.environ.get("BENCH_WARMUP_SECONDS", "5"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _tenant() -> str:
    """A pro tenant whose per-key ingest limit never refuses; returns its key's secret."""
    from control_engine.config_log import ConfigLogWriter
    from control_engine.tenants import create_tenant
    from trulayer_common.config import TenantLimits
    from trulayer_common.kafka import create_producer, ensure_topics
    from trulayer_common.settings import ServiceSettings

    settings = ServiceSettings(kafka_bootstrap_servers=KAFKA)
    await ensure_topics(settings)
    producer = create_producer(settings, client_id="bench-auth")
    await producer.start()
    try:
        writer = ConfigLogWriter(producer)
        created = await create_tenant(writer, f"bench-{uuid.uuid4().hex[:6]}", "pro")
        limits = TenantLimits(ingest_requests_per_minute=10**9, monthly_traces=10**12)
        await writer.append(created.tenant.model_copy(update={"limits": limits}), "bench")
    finally:
        await producer.stop()
    return created.secret


async def _run_mode(name: str, env: dict[str, str], secret: str, chdb: str) -> tuple[float, float]:
    port = _free_port()
    full_env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": KAFKA,
        "REDIS_URL": REDIS,
        "CLICKHOUSE_URL": f"chdb://{chdb}",
        "GATEWAY_PORT": str(port),
        "LOG_LEVEL": "WARNING",
        # A gateway on its own refuses to start without one (it forwards nothing here).
        "INTERNAL_TOKEN": secrets.token_hex(32),
        **env,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        env=full_env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    headers = {"X-Api-Key": secret}
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CLIENTS)) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    async with http.get(f"{url}/readyz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"gateway ({name}) not ready")
                await asyncio.sleep(0.2)

            async def load(seconds: float, body: bytes, expected: int) -> float:
                ok = bad = 0
                stop = time.monotonic() + seconds
                sent_headers = {**headers, "Content-Type": "application/json"}

                async def client() -> None:
                    nonlocal ok, bad
                    while time.monotonic() < stop:
                        data = body or orjson.dumps({"id": uuid.uuid4().hex, "name": "b", "latency_ms": 5})
                        async with http.post(f"{url}/v1/ingest", data=data, headers=sent_headers) as resp:
                            await resp.read()
                            if resp.status == expected:
                                ok += 1
                            else:
                                bad += 1

                started = time.monotonic()
                await asyncio.gather(*(client() for _ in range(CLIENTS)))
                if bad:
                    raise RuntimeError(f"{name}: {bad} answers other than {expected}")
                return ok / (time.monotonic() - started)

            await load(WARMUP, b"", 201)
            # A valid trace: auth, limits, validation and one Kafka produce (acks=all).
            accepted = await load(SECONDS, b"", 201)
            # Malformed JSON: auth and limits run, then 400 before Kafka: their cost undiluted.
            rejected = await load(SECONDS, b"{", 400)
            return accepted, rejected
    finally:
        proc.terminate()
        await proc.wait()


async def main() -> None:
    secret = await _tenant()
    await asyncio.sleep(1)  # let the tenant record land before the gateways read the log
    modes = {
        "on (auth + limits + quota)": {},
        "no-limits (auth only)": {"LIMITS_ENABLED": "false"},
    }
    # Modes take turns over several rounds (median reported): Kafka and the machine drift
    # over a run, and a fixed order would charge the drift to one mode.
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in modes}
    with tempfile.TemporaryDirectory(prefix="bench-auth-") as tmp:
        for round_ in range(ROUNDS):
            order = list(modes.items())
            if round_ % 2:
                order.reverse()
            for name, env in order:
                samples[name].append(await _run_mode(name, env, secret, f"{tmp}/chdb-{uuid.uuid4().hex[:6]}"))
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs"
    print(f"POST /v1/ingest, {CLIENTS} clients, {SECONDS:.0f} s x {ROUNDS} rounds per mode, median ({machine})")
    for column, label in ((0, "201 (produced to Kafka)"), (1, "400 (malformed body, no Kafka)")):
        results = {name: statistics.median(v[column] for v in values) for name, values in samples.items()}
        base = results["no-limits (auth only)"]
        print(f"{label}:")
        for name, rps in results.items():
            runs = ", ".join(f"{v[column]:.0f}" for v in samples[name])
            print(f"  {name:<28} {rps:8.0f} req/s  ({(rps / base - 1) * 100:+.1f}% vs auth only)  runs: {runs}")


if __name__ == "__main__":
    asyncio.run(main())
