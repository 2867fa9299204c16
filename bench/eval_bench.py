"""Evaluation benchmarks against a running local stack (``make up``), from a separate process.

Prints two figures:
1. Deterministic evaluations per second, end to end: ``POST /v1/eval`` (``json_valid``) for
   stored traces by BENCH_EVAL_CLIENTS concurrent clients, until every one of them is
   ``complete`` in storage (counted through ``GET /v1/eval/trends``).
2. Batch ingest throughput without any eval rule, then with one enabled deterministic rule
   (BENCH_RULE_METRIC, default ``pii_leakage``) at sample rate 1.0 on the bench's project
   (same load as ``bench/ingest_bench.py``: 6 clients × 100-trace batches), and the ratio;
   the rule's counters must show every accepted trace evaluated.

Environment: BENCH_URL, BENCH_KEY (as ingest_bench.py; the bootstrap key has the owner scope,
which may create eval rules), BENCH_SECONDS (30 per ingest phase), BENCH_WARMUP_SECONDS (10),
BENCH_EVALS (2000), BENCH_EVAL_CLIENTS (16), BENCH_RULE_METRIC.
"""

from __future__ import annotations

import asyncio
import os
import platform
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson

from ingest_bench import CLIENTS, URL, Run, _CountDict, api_key, make_trace

SECONDS = float(os.environ.get("BENCH_SECONDS", "30"))
WARMUP_SECONDS = float(os.environ.get("BENCH_WARMUP_SECONDS", "10"))
EVALS = int(os.environ.get("BENCH_EVALS", "2000"))
EVAL_CLIENTS = int(os.environ.get("BENCH_EVAL_CLIENTS", "16"))
RULE_METRIC = os.environ.get("BENCH_RULE_METRIC", "pii_leakage")


async def call(
    session: aiohttp.ClientSession, headers: dict[str, str], method: str, path: str, body: Any = None
) -> Any:
    async with session.request(
        method, URL + path, data=orjson.dumps(body) if body is not None else None, headers=headers
    ) as resp:
        data = await resp.json()
        if resp.status >= 300:
            raise SystemExit(f"{method} {path}: {resp.status} {data}")
        return data


async def complete_count(session: aiohttp.ClientSession, headers: dict[str, str], metric: str, since: datetime) -> int:
    params = f"?metric={metric}&interval=day&from={since.isoformat().replace('+00:00', 'Z')}"
    trends = await call(session, headers, "GET", "/v1/eval/trends" + params)
    return sum(p["count"] for s in trends["series"] for p in s["points"])


async def evaluations_per_second(run: Run) -> dict[str, Any]:
    session, headers = run.session, run.headers
    model = f"bench-evals-{run.run_id}"
    ids = [f"{model}-{i}" for i in range(EVALS)]
    for start in range(0, EVALS, 100):
        batch = [make_trace(model, i, n) for n, i in enumerate(ids[start : start + 100])]
        await call(session, headers, "POST", "/v1/ingest/batch", {"traces": batch})
    for _ in range(1200):  # every trace stored before its evaluation is asked for
        if await run.stored(model, datetime.now(UTC) - timedelta(hours=1)) >= EVALS:
            break
        await asyncio.sleep(0.25)
    since = datetime.now(UTC) - timedelta(seconds=1)
    queue = list(ids)
    started = time.monotonic()

    async def client() -> None:
        while queue:
            trace_id = queue.pop()
            await call(
                session,
                headers,
                "POST",
                "/v1/eval",
                {"trace_id": trace_id, "evaluator_type": "rule", "metric_name": "json_valid"},
            )

    await asyncio.gather(*(client() for _ in range(EVAL_CLIENTS)))
    accepted_s = time.monotonic() - started
    done = 0
    while time.monotonic() - started < 300:
        done = await complete_count(session, headers, "json_valid", since)
        if done >= EVALS:
            break
        await asyncio.sleep(0.25)
    total_s = time.monotonic() - started
    return {
        "evaluations": EVALS,
        "accepted_per_s": round(EVALS / accepted_s),
        "complete": done,
        "end_to_end_per_s": round(done / total_s),
        "seconds": round(total_s, 2),
    }


async def ingest_phase(run: Run, label: str) -> int:
    counts = _CountDict({"accepted": 0})
    deadline = time.monotonic() + SECONDS
    started = time.monotonic()
    await asyncio.gather(
        *(run.batch_client(c, f"bench-{label}-{run.run_id}", deadline, counts) for c in range(CLIENTS))
    )
    return round(counts["accepted"] / (time.monotonic() - started))


async def main() -> None:
    key = api_key()
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=64), timeout=aiohttp.ClientTimeout(total=60)
    ) as session:
        run = Run(session, key)
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; target {URL}",
            flush=True,
        )
        print(
            f"[1/2] deterministic evaluations end to end: {EVALS} x POST /v1/eval, {EVAL_CLIENTS} clients ...",
            flush=True,
        )
        evals = await evaluations_per_second(run)
        print(f"      {evals}", flush=True)
        if WARMUP_SECONDS > 0:
            counts = _CountDict({"accepted": 0})
            deadline = time.monotonic() + WARMUP_SECONDS
            await asyncio.gather(
                *(run.batch_client(c, f"bench-evwarm-{run.run_id}", deadline, counts) for c in range(CLIENTS))
            )
        print(
            f"[2/2] batch ingest {SECONDS:.0f} s without eval rules, then with one {RULE_METRIC} rule at 1.0 ...",
            flush=True,
        )
        without = await ingest_phase(run, "norule")
        project = (await call(session, run.headers, "GET", "/v1/traces?limit=1"))["traces"][0]["project_id"]
        rule = await call(
            session,
            run.headers,
            "POST",
            "/v1/eval-rules",
            {
                "project_id": project,
                "evaluator_type": "rule",
                "metric_name": RULE_METRIC,
                "sample_rate": 1.0,
                "name": "bench",
            },
        )
        try:
            with_rule = await ingest_phase(run, "rule")
            await asyncio.sleep(3)
            counters = (await call(session, run.headers, "GET", f"/v1/eval-rules/{rule['id']}"))["counters"]
        finally:
            await call(session, run.headers, "DELETE", f"/v1/eval-rules/{rule['id']}")
        print(
            f"      without a rule: {without} traces/s accepted; with the rule: {with_rule} traces/s accepted "
            f"({with_rule / without:.1%} of it); the rule's counters: {counters}",
            flush=True,
        )


if __name__ == "__main__":
    asyncio.run(main())
