"""Alert detection latency against a running local stack (``make up``), from a separate process.

Detection latency = from the 2xx of the ingest request whose trace crosses a threshold (the
broker has acknowledged it) to the signed webhook arriving at a receiver in this process.

Set-up through the public API: a webhook to a local receiver, one rule ``volume ≥ 1`` with the
shortest cooldown (one minute of event time), and a fresh project per run whose traces carry
event times a minute and a second apart (in the past), so every trace crosses the threshold
out of cooldown. The tenant's other rules are disabled for the run (and re-enabled after).
Traces are sent one at a time, each waiting for its webhook, so the figure is the end-to-end
path (gateway → Kafka → alerter → Kafka → alerter → webhook), not queueing.

The receiver listens on 127.0.0.1, which webhooks may not reach unless the operator allows it:
start the stack with ``EGRESS_ALLOWLIST=127.0.0.1/32 make up``.

Environment: BENCH_URL (default http://127.0.0.1:8080), BENCH_KEY (default: the key in
.trulayer/bootstrap.json), BENCH_ALERTS (200), BENCH_RECEIVER_PORT (0: any free port). The
project is created with a local session token (``.trulayer/session.secret``).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
URL = os.environ.get("BENCH_URL", "http://127.0.0.1:8080")
ALERTS = int(os.environ.get("BENCH_ALERTS", "200"))
SECRET = "bench-secret-0123456789"


def api_key() -> str:
    key = os.environ.get("BENCH_KEY")
    if key:
        return key
    return str(json.loads((REPO / ".trulayer" / "bootstrap.json").read_text())["api_key"])


def session_headers() -> dict[str, str]:
    """An owner session of the bootstrap tenant, signed with the local stack's secret."""
    from control_engine.session_tokens import mint_session_token
    from control_engine.settings import ControlEngineSettings

    data = REPO / ".trulayer"
    tenant_id = json.loads((data / "bootstrap.json").read_text())["tenant_id"]
    settings = ControlEngineSettings(session_hs256_secret=(data / "session.secret").read_text().strip())  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {mint_session_token(settings, tenant_id, 'owner')}"}


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    arrivals: dict[str, asyncio.Future[float]] = {}

    async def receive(request: web.Request) -> web.Response:
        now = time.perf_counter()
        await request.read()
        # One trace in flight at a time: the delivery belongs to the oldest waiting trace.
        for fut in arrivals.values():
            if not fut.done():
                fut.set_result(now)
                break
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", int(os.environ.get("BENCH_RECEIVER_PORT", "0")))
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    headers = {"Authorization": f"Bearer {api_key()}"}
    async with aiohttp.ClientSession(base_url=URL, headers=headers) as http:

        async def call(method: str, path: str, body: Any = None) -> Any:
            async with http.request(method, path, json=body) as resp:
                data = await resp.json()
                if resp.status >= 300:
                    raise RuntimeError(f"{method} {path}: {resp.status} {data}")
                return data

        async with http.post(
            "/v1/projects", json={"name": f"bench-alerts-{uuid.uuid4().hex[:8]}"}, headers=session_headers()
        ) as resp:
            project = (await resp.json())["id"]
        before = (await call("GET", "/v1/alerts"))["rules"]
        paused = [r["id"] for r in before if r["enabled"]]
        for rule_id in paused:
            await call("PATCH", f"/v1/alerts/{rule_id}", {"enabled": False})
        hook = await call("POST", "/v1/webhooks", {"url": f"http://127.0.0.1:{port}/hook", "secret": SECRET})
        rule = await call(
            "POST",
            "/v1/alerts",
            {"name": "bench", "metric": "volume", "operator": "gte", "threshold": 1, "cooldown_minutes": 1},
        )
        # Event times a minute and a second apart, ending now: each trace is out of the last cooldown.
        first = time.time() - (ALERTS + 10) * 61
        await asyncio.sleep(1.0)  # the alerter's config view picks the rule up (~100 ms)
        latencies: list[float] = []
        try:
            for i in range(ALERTS + 10):
                key = uuid.uuid4().hex
                arrivals[key] = asyncio.get_running_loop().create_future()
                trace = {
                    "id": f"bench-{key}",
                    "name": "bench",
                    "model": "m",
                    "latency_ms": 10,
                    "project_id": project,
                    "started_at": datetime.fromtimestamp(first + i * 61, UTC).isoformat(),
                }
                await call("POST", "/v1/ingest", trace)
                acked = time.perf_counter()
                arrived = await asyncio.wait_for(arrivals[key], 30)
                del arrivals[key]
                if i >= 10:  # the first ones warm the path up
                    latencies.append((arrived - acked) * 1000)
        finally:
            await call("DELETE", f"/v1/alerts/{rule['id']}")
            await call("DELETE", f"/v1/webhooks/{hook['id']}")
            for rule_id in paused:
                await call("PATCH", f"/v1/alerts/{rule_id}", {"enabled": True})
    await runner.cleanup()
    print(
        f"alert detection latency over {len(latencies)} alerts: "
        f"p50 {quantile(latencies, 0.5):.1f} ms, p99 {quantile(latencies, 0.99):.1f} ms, "
        f"mean {statistics.fmean(latencies):.1f} ms, max {max(latencies):.1f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
