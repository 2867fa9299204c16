"""Control-plane benchmark against a running local stack (``make up``), from a separate process.

1. **decide**: ``POST /v1/control/decide`` open-loop at ``BENCH_RATE`` requests/s (default
   1,000) for ``BENCH_DURATION`` seconds over ``BENCH_CLIENTS`` connections, after a warm-up:
   achieved rate, latency p50/p99 (measured from each request's scheduled start, so a stall
   counts against it), errors. Then closed-loop (``BENCH_CLIENTS`` clients back to back) for
   the maximum rate. The tenant gets a realistic configuration first: 3 dry-run policies and 5
   model routes (conditions on live windows, one ``always`` route), removed afterwards.
2. **kill-switch propagation**: ``BENCH_TOGGLES`` times on then off, an owner enables (or
   disables) the kill switch; measured from the owner's request to (a) the first
   ``/v1/control/decide`` answering ``block`` (``allow``), polled back to back, and (b) the
   ``event: bundle`` frame saying so on a connected ``/v1/control/config/stream``. p50/p99.

The goal on the development machine: decide p99 ≤ 5 ms at 1,000 requests/s; propagation
p99 ≤ 1 s. Environment: BENCH_URL (http://127.0.0.1:8080), BENCH_KEY (the key in
``<data dir>/bootstrap.json``), BENCH_DATA_DIR (.trulayer: the bootstrap tenant and the local
session secret, for the owner session), BENCH_RATE, BENCH_DURATION (30), BENCH_WARMUP (5),
BENCH_CLIENTS (32), BENCH_TOGGLES (50).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
URL = os.environ.get("BENCH_URL", "http://127.0.0.1:8080")
DATA = Path(os.environ.get("BENCH_DATA_DIR", REPO / ".trulayer"))
RATE = float(os.environ.get("BENCH_RATE", "1000"))
DURATION = float(os.environ.get("BENCH_DURATION", "30"))
WARMUP = float(os.environ.get("BENCH_WARMUP", "5"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "32"))
TOGGLES = int(os.environ.get("BENCH_TOGGLES", "50"))
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "bench-routed")


def bootstrap() -> dict[str, str]:
    return dict(json.loads((DATA / "bootstrap.json").read_text()))


def api_key() -> str:
    return os.environ.get("BENCH_KEY") or bootstrap()["api_key"]


def owner_headers() -> dict[str, str]:
    """An owner session of the bootstrap tenant, signed with the local stack's secret."""
    from control_engine.session_tokens import mint_session_token
    from control_engine.settings import ControlEngineSettings

    secret = (DATA / "session.secret").read_text().strip()
    settings = ControlEngineSettings(session_hs256_secret=secret)  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {mint_session_token(settings, bootstrap()['tenant_id'], 'owner')}"}


def q(values: list[float], quantile: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))] if ordered else float("nan")


def ms(value: float) -> str:
    return f"{value * 1000:.2f} ms"


class Bench:
    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http
        self.key = {"Authorization": f"Bearer {api_key()}"}
        self.owner = owner_headers()
        self.created: list[str] = []

    async def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        async with self.http.request(method, URL + path, json=body, headers=headers or self.owner) as resp:
            data = await resp.json()
            if resp.status >= 300:
                raise RuntimeError(f"{method} {path}: {resp.status} {data}")
            return data

    async def configure(self) -> None:
        for i in range(3):
            policy = await self.call(
                "POST",
                "/v1/policies",
                {"name": f"bench-{i}", "trigger_type": "failure_rate", "action_type": "fallback_model",
                 "rule": {"threshold": 0.5, "model": "fallback", "window_minutes": 5}, "dry_run": True},
            )  # fmt: skip
            self.created.append(f"/v1/policies/{policy['id']}")
        conditions = [
            {"type": "error_rate", "threshold": 0.5, "window_minutes": 5},
            {"type": "latency_threshold", "threshold": 5000, "window_minutes": 5},
            {"type": "cost_threshold", "threshold": 1.0, "window_minutes": 15},
            {"type": "error_rate", "threshold": 0.9, "window_minutes": 1},
        ]
        for i, condition in enumerate(conditions):
            route = await self.call(
                "POST",
                "/v1/model-routes",
                {"name": f"bench-{i}", "condition": condition, "action": {"type": "fallback_model", "model": "fb"},
                 "priority": 10 + i},
            )  # fmt: skip
            self.created.append(f"/v1/model-routes/{route['id']}")
        always = await self.call(
            "POST",
            "/v1/model-routes",
            {"name": "bench-always", "condition": {"type": "always"}, "models": ["bench-routed"],
             "action": {"type": "fallback_model", "model": "gpt-4o-mini"}, "priority": 50},
        )  # fmt: skip
        self.created.append(f"/v1/model-routes/{always['id']}")
        await asyncio.sleep(0.5)

    async def cleanup(self) -> None:
        for path in self.created:
            with contextlib.suppress(RuntimeError):
                await self.call("DELETE", path)
        with contextlib.suppress(RuntimeError):
            await self.call("POST", "/v1/control/killswitch/disable")

    async def decide(self, i: int) -> dict[str, Any]:
        body = {"model": MODELS[i % len(MODELS)], "request_id": f"bench-{i}", "metadata": {"bench": True}}
        async with self.http.post(URL + "/v1/control/decide", json=body, headers=self.key) as resp:
            data: dict[str, Any] = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"decide: {resp.status} {data}")
            return data

    async def open_loop(self, rate: float, seconds: float) -> dict[str, Any]:
        """Requests started at fixed intervals; latency counted from each one's scheduled start."""
        latencies: list[float] = []
        errors = 0
        interval = 1.0 / rate
        total = int(rate * seconds)
        slots = asyncio.Semaphore(CLIENTS * 8)
        start = time.perf_counter()

        async def one(i: int, due: float) -> None:
            nonlocal errors
            async with slots:
                try:
                    await self.decide(i)
                    latencies.append(time.perf_counter() - due)
                except (RuntimeError, aiohttp.ClientError):
                    errors += 1

        tasks = []
        for i in range(total):
            due = start + i * interval
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
        return {"requests": total, "rate": len(latencies) / elapsed, "errors": errors,
                "p50": q(latencies, 0.5), "p99": q(latencies, 0.99), "max": max(latencies, default=0.0)}  # fmt: skip

    async def closed_loop(self, seconds: float) -> float:
        done = 0
        deadline = time.perf_counter() + seconds

        async def client(c: int) -> None:
            nonlocal done
            i = c
            while time.perf_counter() < deadline:
                await self.decide(i)
                done += 1
                i += CLIENTS

        start = time.perf_counter()
        await asyncio.gather(*(client(c) for c in range(CLIENTS)))
        return done / (time.perf_counter() - start)

    async def propagation(self, toggles: int) -> dict[str, list[float]]:
        frames: list[tuple[float, bool]] = []
        arrived = asyncio.Event()

        async def follow() -> None:
            from trulayer_sdk.policy.sse import SseParser

            parser = SseParser()
            timeout = aiohttp.ClientTimeout(total=None)
            headers = {**self.key, "Accept": "text/event-stream"}
            async with self.http.get(URL + "/v1/control/config/stream", headers=headers, timeout=timeout) as resp:
                async for raw in resp.content:
                    event = parser.feed(raw.decode().rstrip("\r\n"))
                    if event is not None and event.event == "bundle":
                        frames.append((time.perf_counter(), bool(json.loads(event.data)["killswitch"]["active"])))
                        arrived.set()

        reader = asyncio.create_task(follow())
        await asyncio.wait_for(arrived.wait(), 10)  # the bundle on connect
        out: dict[str, list[float]] = {"ack": [], "decide": [], "stream": []}
        try:
            for n in range(toggles * 2):
                active = n % 2 == 0
                mark = len(frames)
                started = time.perf_counter()
                await self.call("POST", "/v1/control/killswitch/" + ("enable" if active else "disable"))
                out["ack"].append(time.perf_counter() - started)
                while ((await self.decide(n))["decision"] == "block") is not active:
                    pass
                out["decide"].append(time.perf_counter() - started)
                while not any(state is active for _, state in frames[mark:]):
                    arrived.clear()
                    await asyncio.wait_for(arrived.wait(), 10)
                at = next(t for t, state in frames[mark:] if state is active)
                out["stream"].append(at - started)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
                await reader
        return out


async def main() -> None:
    connector = aiohttp.TCPConnector(limit=CLIENTS * 8)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:
        bench = Bench(http)
        await bench.configure()
        try:
            print(f"[control] warm-up {WARMUP:.0f} s, then decide at {RATE:.0f}/s for {DURATION:.0f} s", flush=True)
            await bench.open_loop(RATE, WARMUP)
            open_loop = await bench.open_loop(RATE, DURATION)
            closed = await bench.closed_loop(min(DURATION, 10.0))
            print(f"[control] kill-switch propagation, {TOGGLES} × on/off", flush=True)
            toggles = await bench.propagation(TOGGLES)
        finally:
            await bench.cleanup()
    print()
    print(f"decide, open loop at {RATE:.0f}/s: {open_loop['rate']:.0f} requests/s answered, "
          f"p50 {ms(open_loop['p50'])}, p99 {ms(open_loop['p99'])}, max {ms(open_loop['max'])}, "
          f"{open_loop['errors']} errors")  # fmt: skip
    print(f"decide, closed loop ({CLIENTS} clients): {closed:.0f} requests/s")
    for name, label in (("ack", "owner's request answered"), ("decide", "→ decide answers"), ("stream", "→ SSE frame")):
        values = toggles[name]
        print(f"kill switch {label}: p50 {ms(q(values, 0.5))}, p99 {ms(q(values, 0.99))}, "
              f"mean {ms(statistics.fmean(values))} ({len(values)} toggles)")  # fmt: skip
    verdict = open_loop["p99"] <= 0.005 and q(toggles["decide"], 0.99) <= 1.0 and q(toggles["stream"], 0.99) <= 1.0
    print(f"goal (decide p99 ≤ 5 ms at {RATE:.0f}/s, propagation p99 ≤ 1 s): {'met' if verdict else 'NOT met'}")
    summary = {"decide": open_loop, "closed_loop_rps": closed,
               "propagation": {k: {"p50": q(v, 0.5), "p99": q(v, 0.99)} for k, v in toggles.items()}}  # fmt: skip
    print(json.dumps(summary), file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
