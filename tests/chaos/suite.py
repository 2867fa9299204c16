"""The fault-injection suite: one real local stack, batch load, one fault at a time.

For each fault a fresh batch load (its own model name, so its traces can be counted apart)
runs for ``warm`` seconds, the fault is injected, the load goes on for ``after`` seconds past
recovery, then stops (batches under way are retried until acknowledged). Once every fault has
run, the stack is stopped with Ctrl-C and :mod:`tests.chaos.verify` compares, per fault, the
acknowledged trace ids with what reads see: every acknowledged trace stored, exactly once.

Faults (all real, no mocks):

* ``kill -9 services process``: SIGKILL to ``trulayer-local up`` (Kafka and Redis live on), then
  ``trulayer-local up`` again on the same data. Recovery: the kill → the first acknowledged batch.
* ``kill -9 broker``: SIGKILL to Kafka; the stack's supervisor restarts it. Recovery: the kill →
  the first acknowledged batch after it.
* ``Redis stopped``: SIGTERM to redis-server; the supervisor restarts it. Recovery: the stop →
  the gateway ready again.
* ``ClickHouse refuses inserts``: the ``traces`` table's directory is made immutable
  (``chattr +i``: the engine cannot create a part, every insert fails) for ``refuse`` seconds.
  Recovery: the fault lifted → everything acknowledged so far readable through the API.
* ``gateway replica restarted``: a second gateway process takes half the load; it gets SIGTERM
  (a rolling restart) and is started again. Recovery: SIGTERM → the replica ready again.

Measured on the way (``notes``): the gateway's first ``201`` after each ``up`` (first start, after
the services were killed, after the services, Kafka and Redis were all killed at once), the
readiness flip after the broker kill, and how long Ctrl-C takes, also right after the broker
was killed (and what it left running: nothing, or the test fails).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from tests.chaos.load import BatchLoad
from tests.chaos.stack import REPO, ChaosStack, GatewayReplica, ready
from trulayer_local import infra


@dataclass
class Timing:
    warm: float = 10.0
    after: float = 10.0
    refuse: float = 10.0
    clients: int = 4


@dataclass
class Outcome:
    fault: str
    model: str
    recovery_s: float
    note: str = ""
    acked: set[str] = field(default_factory=set)
    verified: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    stack: ChaosStack
    timing: Timing
    http: aiohttp.ClientSession
    notes: dict[str, float] = field(default_factory=dict)


Fault = Callable[[Context, BatchLoad], Awaitable[tuple[float, str]]]


async def _until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {timeout}s")
        await asyncio.sleep(0.05)


async def kill_services(ctx: Context, load: BatchLoad) -> tuple[float, str]:
    killed = time.monotonic()
    ctx.stack.kill9()
    await ctx.stack.wait_exit(10)
    answered = await ctx.stack.start()
    ctx.notes["gateway_answers_after_unclean_stop_s"] = answered
    recovery = await load.wait_ack_after(killed, 60)
    ctx.notes["first_20_queryable_after_unclean_stop_s"] = await _first_traces_queryable(ctx, 20)
    return recovery, f"restarted by hand; gateway answered {answered:.1f}s after 'up'"


async def _first_traces_queryable(ctx: Context, count: int) -> float:
    """A client's first ``count`` traces right after the restart: seconds from the first 2xx to
    the last of them readable by id (the issue-9 finding: 20 traces not readable within 30 s,
    while the dead process's consumer-group members still held their partitions)."""
    headers = {"Authorization": f"Bearer {ctx.stack.api_key}"}
    ids = [f"chaos-first-{uuid.uuid4().hex}" for _ in range(count)]
    started = time.monotonic()
    for trace_id in ids:
        body = {"id": trace_id, "name": "first", "model": "chaos-first", "latency_ms": 1}
        async with ctx.http.post(f"{ctx.stack.url()}/v1/ingest", json=body, headers=headers) as resp:
            assert resp.status == 201, await resp.text()
    pending = set(ids)

    async def all_readable() -> bool:
        for trace_id in list(pending):
            async with ctx.http.get(f"{ctx.stack.url()}/v1/traces/{trace_id}", headers=headers) as resp:
                await resp.read()
                if resp.status == 200:
                    pending.discard(trace_id)
        return not pending

    await _until(all_readable, 60, f"the first {count} traces readable after the restart")
    return time.monotonic() - started


async def kill_broker(ctx: Context, load: BatchLoad) -> tuple[float, str]:
    pid = infra.kafka_pid(ctx.stack.cfg)
    assert pid is not None
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)

    async def not_ready() -> bool:
        return not await ready(ctx.http, ctx.stack.url())

    await _until(not_ready, 20, "gateway /readyz non-200 after the broker kill")
    ctx.notes["readyz_flip_after_broker_kill_s"] = time.monotonic() - killed
    recovery = await load.wait_ack_after(killed, 90)
    return (
        recovery,
        f"restarted by the supervisor; /readyz 503 after {ctx.notes['readyz_flip_after_broker_kill_s']:.1f}s",
    )


async def stop_redis(ctx: Context, load: BatchLoad) -> tuple[float, str]:
    pid = infra.redis_pid(ctx.stack.cfg)
    assert pid is not None
    stopped = time.monotonic()
    os.kill(pid, signal.SIGTERM)

    async def restarted_and_ready() -> bool:
        return infra.redis_pid(ctx.stack.cfg) not in (None, pid) and await ready(ctx.http, ctx.stack.url())

    await _until(restarted_and_ready, 60, "Redis restarted and the gateway ready")
    return time.monotonic() - stopped, "restarted by the supervisor"


def _table_dir(stack: ChaosStack, table: str) -> Path:
    return (stack.data_dir / "clickhouse" / "data" / "trulayer" / table).resolve()


async def _chattr(flag: str, path: Path) -> None:
    proc = await asyncio.create_subprocess_exec("chattr", flag, str(path))
    assert await proc.wait() == 0, f"chattr {flag} {path} failed"


async def refuse_inserts(ctx: Context, load: BatchLoad) -> tuple[float, str]:
    table = _table_dir(ctx.stack, "traces")
    await _chattr("+i", table)
    try:
        await asyncio.sleep(ctx.timing.refuse)
    finally:
        await _chattr("-i", table)
    lifted = time.monotonic()
    target = len(load.acked)

    async def caught_up() -> bool:
        return await _stored(ctx, load.model) >= target

    await _until(caught_up, 120, "acknowledged traces readable after inserts were allowed again")
    return time.monotonic() - lifted, f"inserts refused for {ctx.timing.refuse:.0f}s (chattr +i on the table)"


async def restart_replica(ctx: Context, load: BatchLoad) -> tuple[float, str]:
    replica: GatewayReplica = ctx.replica  # type: ignore[attr-defined]
    stopped = time.monotonic()
    await replica.stop()
    await replica.start()
    return time.monotonic() - stopped, "SIGTERM, started again; the other gateway took the load"


FAULTS: dict[str, Fault] = {
    "kill -9 services process": kill_services,
    "kill -9 broker": kill_broker,
    "Redis stopped": stop_redis,
    "ClickHouse refuses inserts": refuse_inserts,
    "gateway replica restarted": restart_replica,
}


async def _stored(ctx: Context, model: str) -> int:
    params = {"model": model, "hours": "1"}
    headers = {"Authorization": f"Bearer {ctx.stack.api_key}"}
    try:
        async with ctx.http.get(f"{ctx.stack.url()}/v1/metrics", params=params, headers=headers) as resp:
            return int((await resp.json())["total_traces"]) if resp.status == 200 else -1
    except (aiohttp.ClientError, TimeoutError):
        return -1


async def run_suite(
    data_dir: Path, timing: Timing, faults: list[str] | None = None
) -> tuple[list[Outcome], dict[str, float]]:
    """Run the faults (all by default) on a fresh stack in ``data_dir``; returns the verified
    outcomes and the notes measured on the way (readiness flip, restart, stop times)."""
    stack = ChaosStack(data_dir)
    run = uuid.uuid4().hex[:6]
    outcomes: list[Outcome] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        ctx = Context(stack, timing, http)
        try:
            ctx.notes["first_start_gateway_answers_s"] = await stack.start()
            for name in faults or list(FAULTS):
                outcomes.append(await _run_fault(ctx, name, run))
            code, took = await stack.stop()
            ctx.notes["ctrl_c_stop_s"] = took
            assert code == 0, f"stack exited {code} on Ctrl-C:\n{stack.output()[-3000:]}"
            await ctx.stack.start()
            await _restart_after_everything_killed(ctx)
            await _stop_with_dead_broker(ctx)
        finally:
            stack.force_down()
    _verify(stack, outcomes)
    return outcomes, ctx.notes


async def _run_fault(ctx: Context, name: str, run: str) -> Outcome:
    model = f"chaos-{run}-{name.split(maxsplit=1)[0].lower()}-{len(name)}"
    urls = [ctx.stack.url()]
    replica = None
    if name == "gateway replica restarted":
        replica = GatewayReplica(ctx.stack)
        await replica.start()
        ctx.replica = replica  # type: ignore[attr-defined]
        urls.append(replica.url)
    load = BatchLoad(urls, ctx.stack.api_key, model, clients=ctx.timing.clients)
    load.start()
    try:
        await asyncio.sleep(ctx.timing.warm)
        recovery, note = await FAULTS[name](ctx, load)
        await asyncio.sleep(ctx.timing.after)
    finally:
        await load.stop()
        if replica is not None:
            await replica.stop()
    print(f"[chaos] {name}: {len(load.acked)} acknowledged, recovery {recovery:.1f}s ({note})", flush=True)
    return Outcome(name, model, recovery, note, set(load.acked))


async def _restart_after_everything_killed(ctx: Context) -> None:
    """SIGKILL the stack process, Kafka and Redis at once (a power cut, for the services), then
    ``trulayer-local up`` again: time until the gateway accepts ingest."""
    ctx.stack.kill9()
    for pid in (infra.kafka_pid(ctx.stack.cfg), infra.redis_pid(ctx.stack.cfg)):
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
    await ctx.stack.wait_exit(10)
    ctx.notes["gateway_answers_after_everything_killed_s"] = await ctx.stack.start()


async def _stop_with_dead_broker(ctx: Context) -> None:
    """With the stack running again, kill its broker, and time Ctrl-C right after."""
    pid = infra.kafka_pid(ctx.stack.cfg)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    await asyncio.sleep(1.0)
    code, took = await ctx.stack.stop()
    ctx.notes["ctrl_c_stop_with_dead_broker_s"] = took
    ctx.notes["ctrl_c_stop_with_dead_broker_exit"] = code
    ctx.notes["ctrl_c_stop_with_dead_broker_left_running"] = len(ctx.stack.leftovers())


def _verify(stack: ChaosStack, outcomes: list[Outcome]) -> None:
    acked_file = stack.data_dir / "chaos-acked.json"
    acked_file.write_bytes(orjson.dumps({o.model: sorted(o.acked) for o in outcomes}))
    out = subprocess.run(
        [sys.executable, "-m", "tests.chaos.verify", str(stack.data_dir / "clickhouse"), str(acked_file)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    report = orjson.loads(out.stdout.strip().splitlines()[-1])
    for outcome in outcomes:
        outcome.verified = report[outcome.model]


def table(outcomes: list[Outcome]) -> str:
    lines = [
        "| fault | acknowledged | stored | lost | duplicates | recovery | how it recovered |",
        "|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        v = o.verified
        lines.append(
            f"| {o.fault} | {v['acknowledged']:,} | {v['stored']:,} | {v['lost']} | {v['duplicates']} | "
            f"{o.recovery_s:.1f} s | {o.note} |"
        )
    return "\n".join(lines)


def cleanup(data_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError, subprocess.CalledProcessError):
        table_dir = (data_dir / "clickhouse" / "data" / "trulayer" / "traces").resolve()
        subprocess.run(["chattr", "-i", str(table_dir)], check=False, capture_output=True)
