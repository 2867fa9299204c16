"""Ingest benchmarks against a running local stack (``make up``), from a separate process.

Prints three figures:
1. Batch ingest: traces/s accepted (100-trace batches, several concurrent clients, ≥60 s),
   then traces/s stored: the run waits until every accepted trace is queryable and checks that
   none was lost (stored == accepted, counted through ``GET /v1/metrics``).
2. Single-trace ingest: requests/s of ``POST /v1/ingest``.
3. Ingest → queryable latency p50/p99: from the 2xx of a probe trace to its first 200 on
   ``GET /v1/traces/{id}``, measured *while* the batch load of (1) runs, and again idle. The
   probe polls every BENCH_POLL_SECONDS (0.05): the figures are that coarse. (Each poll is a
   chDB query of ~5-9 ms; polling every 10 ms put ~70 reads/s on the one embedded engine
   and cut the batch figure of (1) by about a fifth.)

A warm-up of BENCH_WARMUP_SECONDS (15) of the same batch load runs first and is not counted:
right after a start the Kafka JVM is still compiling its hot paths and the first seconds are
markedly slower.

Environment: BENCH_URL (default http://127.0.0.1:8080), BENCH_KEY (default: the key in
.trulayer/bootstrap.json), BENCH_SECONDS (60), BENCH_CLIENTS (6), BENCH_SINGLE_SECONDS (15),
BENCH_WARMUP_SECONDS (15), BENCH_POLL_SECONDS (0.05).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson

REPO = Path(__file__).resolve().parents[1]
URL = os.environ.get("BENCH_URL", "http://127.0.0.1:8080")
SECONDS = float(os.environ.get("BENCH_SECONDS", "60"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "6"))
SINGLE_SECONDS = float(os.environ.get("BENCH_SINGLE_SECONDS", "15"))
WARMUP_SECONDS = float(os.environ.get("BENCH_WARMUP_SECONDS", "15"))
BATCH = 100
POLL_SECONDS = float(os.environ.get("BENCH_POLL_SECONDS", "0.05"))


def api_key() -> str:
    if key := os.environ.get("BENCH_KEY"):
        return key
    path = REPO / ".trulayer" / "bootstrap.json"
    if not path.exists():
        raise SystemExit("no API key: start the stack with 'make up' first (or set BENCH_KEY)")
    return str(json.loads(path.read_text())["api_key"])


def make_trace(model: str, trace_id: str, i: int) -> dict[str, Any]:
    """A typical LLM-call trace: prompt and answer text, usage, one LLM span."""
    return {
        "id": trace_id,
        "name": "chat.completion",
        "model": model,
        "latency_ms": 200 + (i % 50) * 17,
        "cost": 0.0012,
        "input": "Summarise the following support ticket in two sentences: the customer cannot log in ...",
        "output": "The customer is locked out after a password reset. They ask for the account to be unlocked.",
        "tags": {"env": "bench", "team": "search"},
        "metadata": {"user_id": f"u{i % 1000}", "region": "eu"},
        "error": "upstream timeout" if i % 50 == 0 else None,
        "spans": [
            {
                "name": "openai.chat",
                "type": "llm",
                "model": model,
                "prompt_tokens": 120,
                "completion_tokens": 40,
                "latency_ms": 180,
            }
        ],
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Run:
    def __init__(self, session: aiohttp.ClientSession, key: str) -> None:
        self.session = session
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.run_id = uuid.uuid4().hex[:8]

    async def batch_client(self, client: int, model: str, deadline: float, counts: dict[str, int]) -> None:
        seq = 0
        while time.monotonic() < deadline:
            # The model names the phase, so ids never repeat across phases (a repeat is a duplicate).
            body = orjson.dumps({"traces": [make_trace(model, f"{model}-{client}-{seq}-{i}", i) for i in range(BATCH)]})
            seq += 1
            try:
                async with self.session.post(f"{URL}/v1/ingest/batch", data=body, headers=self.headers) as resp:
                    if resp.status == 201:
                        answer = await resp.json()
                        counts["accepted"] += answer["ingested"]
                        counts["duplicates"] += answer["duplicates"]
                    else:
                        await resp.read()
                        counts[f"http_{resp.status}"] += 1
            except aiohttp.ClientError:
                counts["client_error"] += 1

    async def stored(self, model: str, since: datetime) -> int:
        params = {"model": model, "from": since.isoformat(), "to": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}
        async with self.session.get(f"{URL}/v1/metrics", params=params, headers=self.headers) as resp:
            return int((await resp.json())["total_traces"])

    async def probe(
        self, model: str, stop: asyncio.Event, latencies: list[float], pause: float, samples: int | None = None
    ) -> None:
        i = 0
        while not stop.is_set() and (samples is None or len(latencies) < samples):
            trace_id = f"{self.run_id}-probe-{model}-{i}"
            i += 1
            body = orjson.dumps(make_trace(model, trace_id, 1))
            async with self.session.post(f"{URL}/v1/ingest", data=body, headers=self.headers) as resp:
                await resp.read()
                if resp.status != 201:
                    continue
            acked = time.monotonic()
            while True:
                async with self.session.get(f"{URL}/v1/traces/{trace_id}", headers=self.headers) as resp:
                    await resp.read()
                    if resp.status == 200:
                        latencies.append(time.monotonic() - acked)
                        break
                if time.monotonic() - acked > 30:
                    latencies.append(float("inf"))
                    break
                await asyncio.sleep(POLL_SECONDS)
            await asyncio.sleep(pause)

    async def batch_phase(self) -> dict[str, Any]:
        model = f"bench-batch-{self.run_id}"
        since = datetime.now(UTC) - timedelta(minutes=1)
        counts: dict[str, int] = {"accepted": 0}
        counts = _CountDict(counts)
        latencies: list[float] = []
        stop = asyncio.Event()
        probe = asyncio.create_task(self.probe(f"bench-probe-{self.run_id}", stop, latencies, 0.2))
        started = time.monotonic()
        deadline = started + SECONDS
        await asyncio.gather(*(self.batch_client(c, model, deadline, counts) for c in range(CLIENTS)))
        load_seconds = time.monotonic() - started
        stop.set()
        await probe
        accepted = counts["accepted"]
        stored = 0
        wait_deadline = time.monotonic() + 120
        while time.monotonic() < wait_deadline:
            stored = await self.stored(model, since)
            if stored >= accepted:
                break
            await asyncio.sleep(0.25)
        stored_seconds = time.monotonic() - started
        return {
            "clients": CLIENTS,
            "seconds": round(load_seconds, 1),
            "accepted": accepted,
            "accepted_per_s": round(accepted / load_seconds),
            "stored": stored,
            "stored_per_s": round(stored / stored_seconds),
            "lost": accepted - stored,
            "drain_after_load_s": round(stored_seconds - load_seconds, 2),
            "other_outcomes": {k: v for k, v in counts.items() if k != "accepted" and v},
            "queryable_under_load": latencies,
        }

    async def single_phase(self) -> dict[str, Any]:
        model = f"bench-single-{self.run_id}"
        counts: dict[str, int] = _CountDict({"ok": 0})
        deadline = time.monotonic() + SINGLE_SECONDS

        async def client(c: int) -> None:
            seq = 0
            while time.monotonic() < deadline:
                body = orjson.dumps(make_trace(model, f"{self.run_id}-s-{c}-{seq}", seq))
                seq += 1
                async with self.session.post(f"{URL}/v1/ingest", data=body, headers=self.headers) as resp:
                    await resp.read()
                    counts["ok" if resp.status == 201 else f"http_{resp.status}"] += 1

        started = time.monotonic()
        await asyncio.gather(*(client(c) for c in range(16)))
        elapsed = time.monotonic() - started
        return {
            "requests_per_s": round(counts["ok"] / elapsed),
            "ok": counts["ok"],
            "other_outcomes": {k: v for k, v in counts.items() if k != "ok"},
        }

    async def idle_latency(self, samples: int = 100) -> list[float]:
        latencies: list[float] = []
        await self.probe(f"bench-idle-{self.run_id}", asyncio.Event(), latencies, 0.02, samples)
        return latencies


class _CountDict(dict[str, int]):
    def __missing__(self, key: str) -> int:
        return 0


def summary(latencies: list[float]) -> str:
    ms = [x * 1000 for x in latencies]
    return (
        f"p50 {percentile(ms, 0.5):.0f} ms, p99 {percentile(ms, 0.99):.0f} ms, max {max(ms):.0f} ms "
        f"(n={len(ms)}, mean {statistics.fmean(ms):.0f} ms)"
    )


async def main() -> None:
    key = api_key()
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        async with session.get(f"{URL}/readyz") as resp:
            if resp.status != 200:
                raise SystemExit(f"stack not ready at {URL}: {resp.status} {await resp.text()}")
        run = Run(session, key)
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
            f"target {URL}; everything (stack, Kafka, Redis, this load generator) on this machine",
            flush=True,
        )
        if WARMUP_SECONDS > 0:
            print(f"[0/3] warm-up: {WARMUP_SECONDS:.0f} s of batch load, not counted ...", flush=True)
            warm = _CountDict({"accepted": 0})
            deadline = time.monotonic() + WARMUP_SECONDS
            await asyncio.gather(
                *(run.batch_client(c, f"bench-warmup-{run.run_id}", deadline, warm) for c in range(CLIENTS))
            )
        print(f"[1/3] batch ingest: {CLIENTS} clients x {BATCH}-trace batches for {SECONDS:.0f} s ...", flush=True)
        batch = await run.batch_phase()
        under_load = batch.pop("queryable_under_load")
        print(
            f"      accepted {batch['accepted']} traces = {batch['accepted_per_s']} traces/s; "
            f"stored {batch['stored']} = {batch['stored_per_s']} traces/s end to end; lost {batch['lost']}; "
            f"drained {batch['drain_after_load_s']} s after the load stopped; other: {batch['other_outcomes']}"
        )
        print(f"      ingest->queryable under this load: {summary(under_load)}", flush=True)
        print(f"[2/3] single-trace ingest: 16 clients for {SINGLE_SECONDS:.0f} s ...", flush=True)
        single = await run.single_phase()
        print(f"      {single['requests_per_s']} requests/s ({single['ok']} ok; other: {single['other_outcomes']})")
        print("[3/3] ingest->queryable latency, idle stack, 100 probes ...", flush=True)
        idle = await run.idle_latency()
        print(f"      {summary(idle)}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
