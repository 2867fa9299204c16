"""The event loop every service runs on (uvloop: libuv, markedly faster than asyncio's own), and
the garbage collector's settings for serving.

:func:`settle_gc` runs once a service has started. The hot paths allocate many short-lived,
acyclic objects (parsed JSON, row dicts) that reference counting frees on its own; with the
default thresholds (700, 10, 10) the cyclic collector still ran about a thousand times every
10 s under ingest load and took ~12 % of the local stack's main thread, mostly re-scanning the
long-lived objects of start-up. Those are frozen out of its reach, and the young generation is
collected after 50,000 net allocations instead of 700 (cycles are still collected).

:func:`observe_runtime` exports what decides a service's latency tail besides its own code:
the time each garbage collection stops the world (``trulayer_gc_pause_seconds{generation}``)
and how late the event loop runs a callback scheduled every 50 ms
(``trulayer_event_loop_lag_seconds``): a handler that blocks the loop, or a pause, shows there.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop
from aiohttp import web
from prometheus_client import Histogram

T = TypeVar("T")
GC_THRESHOLDS = (50_000, 20, 20)
_PAUSE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
GC_PAUSE = Histogram(
    "trulayer_gc_pause_seconds", "stop-the-world time of one garbage collection", ["generation"], buckets=_PAUSE_BUCKETS
)
LOOP_LAG = Histogram(
    "trulayer_event_loop_lag_seconds", "how late the event loop ran a callback due every 50 ms", buckets=_PAUSE_BUCKETS
)
_LAG_INTERVAL = 0.05
_gc_started: list[float] = []
_monitors: set[asyncio.Task[None]] = set()


def new_event_loop() -> asyncio.AbstractEventLoop:
    return uvloop.new_event_loop()


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def settle_gc() -> None:
    """Call once start-up is done: collect, freeze the survivors, raise the thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc_started.append(time.perf_counter())
    elif _gc_started:
        GC_PAUSE.labels(str(info.get("generation", ""))).observe(time.perf_counter() - _gc_started.pop())


async def _watch_loop_lag() -> None:
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + _LAG_INTERVAL
        await asyncio.sleep(_LAG_INTERVAL)
        LOOP_LAG.observe(max(loop.time() - due, 0.0))


def observe_runtime() -> None:
    """Install the GC pause and loop lag metrics (once per process; call on the running loop)."""
    if _on_gc not in gc.callbacks:
        gc.callbacks.append(_on_gc)
    if not _monitors:
        task = asyncio.get_running_loop().create_task(_watch_loop_lag(), name="loop-lag")
        _monitors.add(task)
        task.add_done_callback(_monitors.discard)


def settle_gc_after_startup(app: web.Application) -> web.Application:
    """For a service run alone: :func:`settle_gc` once its start-up (cleanup contexts included)
    ran, and :func:`observe_runtime`."""

    async def _settle(_: web.Application) -> None:
        settle_gc()
        observe_runtime()

    app.on_startup.append(_settle)
    return app
