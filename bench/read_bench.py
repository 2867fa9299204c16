"""The read path at scale (issues 10 and 13), on a local stack of its own holding 10 million traces.

Set-up: a data directory of its own (``BENCH_READS_DIR``, default ``.trulayer/bench-reads``) and
ports of its own, so a ``make up`` stack is not touched. The first run starts the stack once to
create its tenant, stops it, fills ``BENCH_TRACES`` (10,000,000) traces with
``bench/read_fill.py`` (``INSERT … SELECT … FROM numbers()``, not the API; a few minutes), then
starts it again; later runs reuse the data (delete the directory to refill).

Then, against that stack (load generator, stack, Kafka and Redis on this machine):

1. reads: p50/p95 of the typical reads (list with and without a filter, trace detail, metrics in
   both shapes, the query API: distribution by model, timeseries by hour over 7 days, metadata
   groupBy), ``BENCH_READ_ROUNDS`` (40) each, one at a time, idle stack;
2. mixed: batch ingest alone for ``BENCH_MIXED_SECONDS`` (40), then the same ingest while 4
   clients loop over the heaviest reads: accepted traces/s of both (goal: ≥ 90 %), reads done,
   ingest → queryable p50/p99 under the mixed load (goal p99 ≤ 2 s). The ingest load goes to a
   second tenant (``bench-load``), so the read tenant holds exactly its filled traces in every
   phase and run;
3. query API and live tail under batch load: p50/p95 of the distribution and the timeseries,
   and 2xx → SSE frame p50/p99 of probe traces (``BENCH_LIVE_SECONDS``, 30);
4. export: the stack process's resident memory while ``GET /v1/traces/export`` streams
   ``BENCH_EXPORT_ROWS`` (1,000,000) traces as JSON lines.

Results are printed and written to ``<dir>/results.json``. Environment: BENCH_PHASES
(reads,mixed,live,export), BENCH_READS_DIR,
BENCH_TRACES, BENCH_READ_ROUNDS, BENCH_MIXED_SECONDS, BENCH_WARMUP_SECONDS (15),
BENCH_LIVE_SECONDS, BENCH_EXPORT_ROWS, BENCH_PORT_BASE (28000: gateway +80, control +81,
Kafka +92/+93, Redis +79).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import random
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("BENCH_READS_DIR", REPO / ".trulayer" / "bench-reads")).resolve()
TRACES = int(os.environ.get("BENCH_TRACES", "10000000"))
ROUNDS = int(os.environ.get("BENCH_READ_ROUNDS", "40"))
MIXED_SECONDS = float(os.environ.get("BENCH_MIXED_SECONDS", "40"))
WARMUP_SECONDS = float(os.environ.get("BENCH_WARMUP_SECONDS", "15"))
LIVE_SECONDS = float(os.environ.get("BENCH_LIVE_SECONDS", "30"))
EXPORT_ROWS = int(os.environ.get("BENCH_EXPORT_ROWS", "1000000"))
BASE = int(os.environ.get("BENCH_PORT_BASE", "28000"))
PHASES = set(os.environ.get("BENCH_PHASES", "reads,mixed,live,export").split(","))
GATEWAY = f"http://127.0.0.1:{BASE + 80}"
STACK_ENV = {
    "TRULAYER_DATA_DIR": str(DATA),
    "TRULAYER_KAFKA_PORT": str(BASE + 92),
    "TRULAYER_KAFKA_CONTROLLER_PORT": str(BASE + 93),
    "TRULAYER_REDIS_PORT": str(BASE + 79),
    "GATEWAY_PORT": str(BASE + 80),
    "CONTROL_PORT": str(BASE + 81),
    "LOG_LEVEL": "WARNING",
}
os.environ["BENCH_URL"] = GATEWAY  # for the ingest bench's load functions, imported below
sys.path.insert(0, str(Path(__file__).parent))
import ingest_bench  # noqa: E402

READERS = 4


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def ms(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(values, 0.5) * 1000, 1),
        "p95_ms": round(percentile(values, 0.95) * 1000, 1),
        "p99_ms": round(percentile(values, 0.99) * 1000, 1),
        "n": len(values),
    }


class Stack:
    """``trulayer-local up`` in a subprocess on this bench's directory and ports."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None

    def launch(self) -> subprocess.Popen[bytes]:
        DATA.mkdir(parents=True, exist_ok=True)
        log = (DATA / "stack.log").open("ab")
        return subprocess.Popen(
            [str(REPO / ".venv" / "bin" / "trulayer-local"), "up"],
            env={**os.environ, **STACK_ENV},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )

    async def start(self) -> None:
        self.proc = self.launch()
        deadline = time.monotonic() + 300
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise SystemExit(f"the stack exited ({self.proc.returncode}); see {DATA / 'stack.log'}")
                try:
                    async with http.get(f"{GATEWAY}/readyz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(1)
        raise SystemExit(f"the stack did not become ready; see {DATA / 'stack.log'}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def rss_mib(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")


async def prepare(stack: Stack) -> dict[str, Any]:
    bootstrap = DATA / "bootstrap.json"
    filled = DATA / "fill.json"
    if not bootstrap.exists():
        print("[set-up] starting the stack once to create its tenant ...", flush=True)
        await stack.start()
        stack.stop()
    tenant = json.loads(bootstrap.read_text())
    if not filled.exists() or json.loads(filled.read_text()).get("traces") != TRACES:
        project = tenant["project_id"]
        print(f"[set-up] filling {TRACES:,} traces with INSERT … SELECT (a few minutes) ...", flush=True)
        started = time.monotonic()
        await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                str(REPO / "bench" / "read_fill.py"),
                "--data-dir",
                str(DATA),
                "--tenant",
                tenant["tenant_id"],
                "--projects",
                f"{project},{project}-b,{project}-c",
                "--traces",
                str(TRACES),
            ],
            check=True,
            cwd=REPO,
        )
        print(f"[set-up] filled in {time.monotonic() - started:.0f} s", flush=True)
    print("[set-up] starting the stack ...", flush=True)
    await stack.start()
    loader = DATA / "load-tenant.json"
    if not loader.exists():
        # The ingest load goes to a tenant of its own: the read tenant keeps exactly its filled
        # traces, run after run, and the reads measure that data set under the other's load.
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{BASE + 92}",
            "CONFIG_SECRET_KEYS": (DATA / "config-secret.keys").read_text().strip(),
        }
        made = await asyncio.to_thread(
            subprocess.run,
            [
                str(REPO / ".venv" / "bin" / "trulayer"),
                "tenants",
                "create",
                "--name",
                "bench-load",
                "--plan",
                "enterprise",
                "--json",
            ],
            env=env,
            check=True,
            capture_output=True,
            cwd=REPO,
        )
        loader.write_bytes(made.stdout)
    load = json.loads(loader.read_text())
    tenant["load_key"] = load["api_key"]
    await asyncio.sleep(2)  # the gateway reads the new tenant from the config log
    return dict(tenant)


def now_iso(delta: timedelta = timedelta(0)) -> str:
    return (datetime.now(UTC) + delta).isoformat().replace("+00:00", "Z")


def query_body(kind: str) -> dict[str, Any]:
    week = {"startTime": now_iso(-timedelta(days=7)), "endTime": now_iso(), "dataSource": "traces"}
    if kind == "distribution":
        return {
            **week,
            "type": "distribution",
            "groupBy": ["modelName"],
            "aggregations": [
                {"type": "count", "column": "latencyMs"},
                {"type": "p50", "column": "latencyMs"},
                {"type": "p99", "column": "latencyMs"},
                {"type": "sum", "column": "costInUSD"},
            ],
        }
    if kind == "timeseries":
        return {
            **week,
            "type": "timeseries",
            "interval": "1 hour",
            "aggregations": [
                {"type": "p95", "column": "latencyMs"},
                {"type": "sum", "column": "costInUSD"},
                {"type": "rateSum", "column": "totalTokens"},
            ],
        }
    return {
        **week,
        "type": "distribution",
        "groupBy": ["metadata.team"],
        "aggregations": [
            {"type": "sum", "column": "costInUSD"},
            {"type": "avg", "column": "latencyMs"},
            {"type": "p95", "column": "latencyMs"},
        ],
    }


Read = Callable[[], Awaitable[int]]


def reads(http: aiohttp.ClientSession, headers: dict[str, str]) -> dict[str, Read]:
    def get(path: str, params: dict[str, str] | None = None) -> Read:
        async def call() -> int:
            async with http.get(f"{GATEWAY}{path}", params=params, headers=headers) as resp:
                await resp.read()
                return resp.status

        return call

    def detail() -> Read:
        async def call() -> int:
            trace_id = f"tr-{random.randrange(TRACES):010d}"
            return await get(f"/v1/traces/{trace_id}")()

        return call

    def query(kind: str) -> Read:
        async def call() -> int:
            async with http.post(f"{GATEWAY}/v1/metrics/query", json=query_body(kind), headers=headers) as resp:
                await resp.read()
                return resp.status

        return call

    return {
        "traces list (limit 50)": get("/v1/traces", {"limit": "50"}),
        "traces list, model filter": get("/v1/traces", {"limit": "50", "model": "llama-3-70b"}),
        "trace detail": detail(),
        "metrics summary (24 h)": get("/v1/metrics"),
        "metrics, GuardLayer shape (hours=24)": get("/v1/metrics", {"hours": "24"}),
        "query API: distribution by model (7 d)": query("distribution"),
        "query API: timeseries by hour (7 d)": query("timeseries"),
        "query API: metadata groupBy team (7 d)": query("metadata"),
    }


HEAVIEST = (
    "query API: metadata groupBy team (7 d)",
    "query API: timeseries by hour (7 d)",
    "metrics, GuardLayer shape (hours=24)",
    "traces list, model filter",
)


async def timed(call: Read) -> tuple[float, int]:
    started = time.perf_counter()
    status = await call()
    return time.perf_counter() - started, status


async def read_phase(calls: dict[str, Read]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, call in calls.items():
        for _ in range(5):
            await call()
        times, statuses = [], []
        for _ in range(ROUNDS):
            elapsed, status = await timed(call)
            times.append(elapsed)
            statuses.append(status)
        out[name] = {**ms(times), "non_200": sum(1 for s in statuses if s != 200)}
        print(
            f"      {name:42s} p50 {out[name]['p50_ms']:7.1f} ms   p95 {out[name]['p95_ms']:7.1f} ms"
            f"   (non-200: {out[name]['non_200']})",
            flush=True,
        )
    return out


async def batch_load(run: Any, seconds: float, tag: str) -> float:
    counts = ingest_bench._CountDict({"accepted": 0})
    started = time.monotonic()
    deadline = started + seconds
    await asyncio.gather(*(run.batch_client(c, tag, deadline, counts) for c in range(ingest_bench.CLIENTS)))
    return counts["accepted"] / (time.monotonic() - started)


async def mixed_phase(run: Any, calls: dict[str, Read]) -> dict[str, Any]:
    alone = await batch_load(run, MIXED_SECONDS, f"bench-alone-{run.run_id}")
    print(f"      ingest alone: {alone:,.0f} traces/s accepted", flush=True)
    stop = asyncio.Event()
    read_times: list[float] = []
    refused = 0

    async def reader(i: int) -> None:
        nonlocal refused
        names = HEAVIEST[i % len(HEAVIEST) :] + HEAVIEST[: i % len(HEAVIEST)]
        while not stop.is_set():
            for name in names:
                elapsed, status = await timed(calls[name])
                read_times.append(elapsed)
                refused += status != 200

    latencies: list[float] = []
    probe = asyncio.create_task(run.probe(f"bench-mixed-probe-{run.run_id}", stop, latencies, 0.2))
    readers = [asyncio.create_task(reader(i)) for i in range(READERS)]
    mixed = await batch_load(run, MIXED_SECONDS, f"bench-mixed-{run.run_id}")
    stop.set()
    await asyncio.gather(probe, *readers)
    result = {
        "ingest_alone_per_s": round(alone),
        "ingest_with_readers_per_s": round(mixed),
        "ratio": round(mixed / alone, 3) if alone else None,
        "reads_done": len(read_times),
        "reads_per_s": round(len(read_times) / MIXED_SECONDS, 1),
        "reads_non_200": refused,
        "read_latency": ms(read_times),
        "ingest_to_queryable": ms(latencies),
    }
    print(
        f"      with {READERS} readers: {mixed:,.0f} traces/s accepted = {result['ratio']:.0%} of alone; "
        f"{result['reads_per_s']} reads/s (p50 {result['read_latency']['p50_ms']} ms, "
        f"p95 {result['read_latency']['p95_ms']} ms, non-200 {refused}); ingest->queryable "
        f"p50 {result['ingest_to_queryable']['p50_ms']} ms p99 {result['ingest_to_queryable']['p99_ms']} ms",
        flush=True,
    )
    return result


async def live_phase(
    run: Any, http: aiohttp.ClientSession, headers: dict[str, str], calls: dict[str, Read]
) -> dict[str, Any]:
    arrived: dict[str, float] = {}
    waiting: dict[str, asyncio.Event] = {}
    resp = await http.get(f"{GATEWAY}/v1/traces/live", headers=headers, timeout=aiohttp.ClientTimeout())

    async def listen() -> None:
        async for raw in resp.content:
            if raw.startswith(b"data: "):
                trace_id = orjson.loads(raw[6:])["trace_id"]
                arrived.setdefault(trace_id, time.monotonic())
                if trace_id in waiting:
                    waiting[trace_id].set()

    listener = asyncio.create_task(listen())
    await asyncio.sleep(2)  # the workers see the listener (1 s cache)
    stop = asyncio.Event()
    query_times: dict[str, list[float]] = {"distribution": [], "timeseries": []}
    live: list[float] = []
    live_missing = 0

    async def queries() -> None:
        names = {
            "distribution": "query API: distribution by model (7 d)",
            "timeseries": "query API: timeseries by hour (7 d)",
        }
        while not stop.is_set():
            for kind, name in names.items():
                elapsed, _ = await timed(calls[name])
                query_times[kind].append(elapsed)

    json_headers = {**headers, "Content-Type": "application/json"}

    async def probes() -> None:
        nonlocal live_missing
        i = 0
        while not stop.is_set():
            trace_id = f"live-{run.run_id}-{i}"
            i += 1
            waiting[trace_id] = asyncio.Event()
            body = orjson.dumps(ingest_bench.make_trace("bench-live", trace_id, i))
            async with http.post(f"{GATEWAY}/v1/ingest", data=body, headers=json_headers) as answer:
                await answer.read()
                if answer.status != 201:
                    await asyncio.sleep(0.2)
                    continue
            acked = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiting[trace_id].wait(), 10)
            if trace_id in arrived:
                live.append(arrived[trace_id] - acked)
            else:
                live_missing += 1
            await asyncio.sleep(0.2)

    tasks = [asyncio.create_task(queries()), asyncio.create_task(probes())]
    rate = await batch_load(run, LIVE_SECONDS, f"bench-live-load-{run.run_id}")
    stop.set()
    await asyncio.gather(*tasks)
    listener.cancel()
    resp.close()
    result = {
        "ingest_per_s": round(rate),
        "distribution_by_model": ms(query_times["distribution"]),
        "timeseries_by_hour_7d": ms(query_times["timeseries"]),
        "live_tail_2xx_to_frame": ms(live),
        "live_probes_without_frame": live_missing,
    }
    print(
        f"      under {rate:,.0f} traces/s: distribution p50 {result['distribution_by_model']['p50_ms']} / "
        f"p95 {result['distribution_by_model']['p95_ms']} ms; timeseries p50 "
        f"{result['timeseries_by_hour_7d']['p50_ms']} / p95 {result['timeseries_by_hour_7d']['p95_ms']} ms; "
        f"live tail p50 {result['live_tail_2xx_to_frame']['p50_ms']} / p99 "
        f"{result['live_tail_2xx_to_frame']['p99_ms']} ms (missing {live_missing})",
        flush=True,
    )
    return result


async def export_phase(stack: Stack, http: aiohttp.ClientSession, headers: dict[str, str]) -> dict[str, Any]:
    samples: list[float] = []
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            samples.append(stack.rss_mib())
            await asyncio.sleep(0.1)

    before = stack.rss_mib()
    sampler = asyncio.create_task(sample())
    started = time.monotonic()
    rows = 0
    size = 0
    async with http.get(
        f"{GATEWAY}/v1/traces/export",
        params={"format": "jsonl", "limit": str(EXPORT_ROWS)},
        headers=headers,
        timeout=aiohttp.ClientTimeout(),
    ) as resp:
        async for chunk in resp.content.iter_chunked(1 << 20):
            rows += chunk.count(b"\n")
            size += len(chunk)
    elapsed = time.monotonic() - started
    done.set()
    await sampler
    result = {
        "rows": rows,
        "mib": round(size / 2**20),
        "seconds": round(elapsed, 1),
        "rows_per_s": round(rows / elapsed),
        "rss_before_mib": round(before),
        "rss_peak_mib": round(max(samples)),
        "rss_after_mib": round(stack.rss_mib()),
    }
    print(
        f"      {rows:,} rows ({result['mib']} MiB) in {elapsed:.0f} s = {result['rows_per_s']:,} rows/s; "
        f"stack RSS {result['rss_before_mib']} MiB before, peak {result['rss_peak_mib']} MiB, "
        f"{result['rss_after_mib']} MiB after",
        flush=True,
    )
    return result


async def main() -> None:
    stack = Stack()
    try:
        tenant = await prepare(stack)
        headers = {"Authorization": f"Bearer {tenant['api_key']}"}
        load = os.getloadavg()
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, load average {load[0]:.1f} "
            f"(1 min) before the run; {TRACES:,} traces; stack {GATEWAY}",
            flush=True,
        )
        connector = aiohttp.TCPConnector(limit=64)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as http:
            calls = reads(http, headers)
            run = ingest_bench.Run(http, tenant["load_key"])
            load_headers = {"Authorization": f"Bearer {tenant['load_key']}"}
            results: dict[str, Any] = {"traces": TRACES, "load_average_before": load}
            if "reads" in PHASES:
                print(f"[1/4] reads, {ROUNDS} rounds each, idle stack:", flush=True)
                results["reads"] = await read_phase(calls)
            if "mixed" in PHASES:
                print(
                    f"[2/4] warm-up {WARMUP_SECONDS:.0f} s of batch ingest, then mixed ({MIXED_SECONDS:.0f} s each):",
                    flush=True,
                )
                await batch_load(run, WARMUP_SECONDS, f"bench-warmup-{run.run_id}")
                results["mixed"] = await mixed_phase(run, calls)
            if "live" in PHASES:
                print(f"[3/4] query API and live tail under batch load ({LIVE_SECONDS:.0f} s):", flush=True)
                results["under_load"] = await live_phase(run, http, load_headers, calls)
            if "export" in PHASES:
                print(f"[4/4] export of {EXPORT_ROWS:,} traces (JSON lines), stack memory:", flush=True)
                results["export"] = await export_phase(stack, http, headers)
            results["load_average_after"] = os.getloadavg()
        (DATA / "results.json").write_text(json.dumps(results, indent=2))
        print(f"results in {DATA / 'results.json'}", flush=True)
    finally:
        stack.stop()


if __name__ == "__main__":
    asyncio.run(main())
