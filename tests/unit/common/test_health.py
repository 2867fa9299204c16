"""Liveness and readiness semantics of trulayer_common.health."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from trulayer_common.health import add_health_routes, dead_checks, task_liveness


async def _client(app: web.Application) -> TestClient[web.Request, web.Application]:
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_task_liveness_tracks_a_task_that_dies() -> None:
    holder: dict[str, asyncio.Task[None]] = {}
    check = task_liveness(lambda: holder.get("task"))
    assert check() is None  # not started yet

    gate = asyncio.Event()

    async def work() -> None:
        await gate.wait()
        raise RuntimeError("consumer loop failed")

    holder["task"] = asyncio.create_task(work())
    await asyncio.sleep(0)
    assert check() is None  # running
    gate.set()
    await asyncio.sleep(0.01)
    assert check() == "RuntimeError: consumer loop failed"


async def test_cancelled_or_clean_tasks_are_alive() -> None:
    async def forever() -> None:
        await asyncio.sleep(3600)

    task = asyncio.create_task(forever())
    task.cancel()
    await asyncio.sleep(0)
    assert task_liveness(lambda: task)() is None
    done = asyncio.create_task(asyncio.sleep(0))
    await done
    assert task_liveness(lambda: done)() is None


async def test_healthz_and_readyz_turn_red_when_a_liveness_check_fails() -> None:
    reason: list[str | None] = [None]

    async def ready() -> bool:
        return True

    app = web.Application()
    add_health_routes(app, {"dep": ready}, {"loop": lambda: reason[0]})
    client = await _client(app)
    try:
        assert (await client.get("/healthz")).status == 200
        assert (await client.get("/readyz")).status == 200
        reason[0] = "DeadLetterFloodError: too many"
        resp = await client.get("/healthz")
        assert resp.status == 503
        assert await resp.json() == {"status": "dead", "checks": {"loop": "DeadLetterFloodError: too many"}}
        assert (await client.get("/readyz")).status == 503
        assert dead_checks(app) == {"loop": "DeadLetterFloodError: too many"}
    finally:
        await client.close()


async def test_runtime_metrics_observe_gc_pauses_and_loop_lag() -> None:
    import gc

    from prometheus_client import REGISTRY

    from trulayer_common.runtime import observe_runtime

    def count(name: str, labels: dict[str, str] | None = None) -> float:
        return REGISTRY.get_sample_value(name, labels or {}) or 0.0

    before_gc = count("trulayer_gc_pause_seconds_count", {"generation": "2"})
    before_lag = count("trulayer_event_loop_lag_seconds_count")
    observe_runtime()
    observe_runtime()  # idempotent: one callback, one monitor
    gc.collect()
    await asyncio.sleep(0.2)
    assert count("trulayer_gc_pause_seconds_count", {"generation": "2"}) == before_gc + 1
    assert count("trulayer_event_loop_lag_seconds_count") >= before_lag + 2
