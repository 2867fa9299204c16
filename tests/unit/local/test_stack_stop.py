"""The local stack's stop stays bounded when a service will not stop (a chaos run found a faust
app, still starting after a broker restart, that swallowed its cancellation: ``wait_for`` waited
on it past the 14 s backstop and the stack exited 1 on Ctrl-C)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from trulayer_common.settings import ServiceSettings
from trulayer_local.stack import LocalStack, ServiceSpec


async def _stubborn(release: asyncio.Event) -> None:
    """Ignores every cancellation (as a stuck clean-up or start can) until released."""
    while not release.is_set():
        try:
            await release.wait()
        except asyncio.CancelledError:
            continue


async def test_a_start_or_clean_up_that_ignores_cancellation_is_abandoned() -> None:
    release = asyncio.Event()
    stack = LocalStack(ServiceSettings(), [])
    # A background service whose start hangs: its watcher honours the cancellation, the start
    # itself does not.
    stuck_start = asyncio.ensure_future(_stubborn(release))
    stack._starting["alerter"] = stuck_start
    stack._background["alerter"] = asyncio.create_task(asyncio.sleep(3600))

    async def hanging_cleanup(app: web.Application) -> AsyncIterator[None]:
        yield
        await _stubborn(release)

    async def clean(app: web.Application) -> AsyncIterator[None]:
        yield

    for name, ctx in (("worker", clean), ("gateway", hanging_cleanup)):
        app = web.Application()
        app.cleanup_ctx.append(ctx)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        stack._runners.append((ServiceSpec(name, lambda _, app=app: app, "127.0.0.1", None), runner))

    # The bound is the test's failure mode, not a timing assertion: a stop that waits for a task
    # ignoring its cancellation never returns.
    stopping = asyncio.ensure_future(stack.stop(timeout=1.0))
    try:
        done, _ = await asyncio.wait({stopping}, timeout=30)
        assert done, "stop() is waiting for a task that ignores its cancellation"
        assert stopping.result() == ["alerter (still starting)", "gateway"]
        assert not stack._runners and not stack._background and not stack._starting
        assert not stuck_start.done()  # left behind, not awaited
    finally:
        release.set()  # the test's loop must not keep them
        await asyncio.wait({stopping}, timeout=5)
