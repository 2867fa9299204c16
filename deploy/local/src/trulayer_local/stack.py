"""Every service in one process, on one event loop, sharing one embedded chDB (DESIGN.md's
local mode). chDB allows one process per data directory, hence one process.

Services plug in as :class:`ServiceSpec` entries: a name, an app factory and a port (its
health, readiness and metrics routes, and its API if it has one). Each runs exactly as it
would alone, through its own ``create_app``; only the ClickHouse client is shared. Stream
processors start in the background, so the gateway accepts ingest whatever their state.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from alerter.app import create_app as create_alerter
from alerter.settings import AlerterSettings
from control_engine.app import create_app as create_control_engine
from control_engine.settings import ControlEngineSettings
from eval_engine.app import create_app as create_eval_engine
from eval_engine.settings import EvalEngineSettings
from gateway.app import create_app as create_gateway
from gateway.settings import GatewaySettings
from ingest_worker.app import create_app as create_ingest_worker
from ingest_worker.settings import IngestWorkerSettings
from trulayer_common.clickhouse import ClickHouse, apply_migrations, create_clickhouse
from trulayer_common.health import dead_checks
from trulayer_common.kafka import ensure_topics
from trulayer_common.logging import get_logger
from trulayer_common.settings import ServiceSettings
from trulayer_local.infra import InfraError

log = get_logger(__name__)
BACKGROUND_START_ATTEMPTS = 5
SLOW_START_WARN_SECONDS = 60.0


@dataclass(frozen=True)
class ServiceSpec:
    """One service of the stack. A ``background`` service (a stream processor) starts after the
    others are serving, without holding them up, and reports its own readiness."""

    name: str
    factory: Callable[[ClickHouse], web.Application]
    host: str
    port: int | None
    background: bool = False


def local_control_url(control: ControlEngineSettings, gateway: GatewaySettings) -> str:
    """Where this process's control-engine listens, for the gateway: follows ``CONTROL_HOST`` /
    ``CONTROL_PORT``. An explicit ``CONTROL_ENGINE_URL`` pointing elsewhere is refused (the
    gateway would forward the control plane to nothing, or to some other process)."""
    host = "127.0.0.1" if control.control_host in ("0.0.0.0", "", "::") else control.control_host  # noqa: S104
    url = f"http://{host}:{control.control_port}"
    if "control_engine_url" in gateway.model_fields_set and gateway.control_engine_url.rstrip("/") != url:
        raise InfraError(
            f"CONTROL_ENGINE_URL={gateway.control_engine_url} does not reach this stack's control-engine "
            f"(CONTROL_HOST/CONTROL_PORT: {url}); unset it in local mode, the stack derives it"
        )
    return url


def default_services(clickhouse_url: str | None = None) -> list[ServiceSpec]:
    """The services of the local stack, in start order (the control-engine owns config first).

    Each one serves its own ``/healthz``, ``/readyz`` and ``/metrics`` on its port (the
    ingest-worker on ``WORKER_PORT``, the alerter on ``ALERTER_PORT``, the eval-engine on
    ``EVAL_ENGINE_PORT``)."""
    overrides = {"clickhouse_url": clickhouse_url} if clickhouse_url else {}
    control = ControlEngineSettings(**overrides)  # type: ignore[arg-type]
    gateway = GatewaySettings(**overrides)  # type: ignore[arg-type]
    # Gateway and control-engine share this process: without a configured INTERNAL_TOKEN they
    # get a fresh random one (nothing outside the process needs it).
    token = control.internal_token or gateway.internal_token or SecretStr(secrets.token_urlsafe(32))
    control = control.model_copy(update={"internal_token": token})
    gateway = gateway.model_copy(
        update={"internal_token": token, "control_engine_url": local_control_url(control, gateway)}
    )
    worker = IngestWorkerSettings(**overrides)  # type: ignore[arg-type]
    alerter = AlerterSettings(**overrides)  # type: ignore[arg-type]
    evals = EvalEngineSettings(**overrides)  # type: ignore[arg-type]
    return [
        ServiceSpec(
            "control-engine",
            lambda ch: create_control_engine(control, clickhouse=ch),
            control.control_host,
            control.control_port,
        ),
        ServiceSpec(
            "ingest-worker",
            lambda ch: create_ingest_worker(worker, clickhouse=ch),
            worker.worker_host,
            worker.worker_port,
        ),
        ServiceSpec(
            "gateway",
            lambda ch: create_gateway(gateway, clickhouse=ch),
            gateway.gateway_host,
            gateway.gateway_port,
        ),
        # Stream processors, started once ingest is served, in the background: the alerter's faust
        # app runs on this same loop (restoring its tables after a restart takes a while); the
        # eval-engine's loops too, sharing the embedded chDB (it reads stored traces).
        ServiceSpec(
            "alerter",
            lambda _ch: create_alerter(alerter),
            alerter.alerter_host,
            alerter.alerter_port,
            background=True,
        ),
        ServiceSpec(
            "eval-engine",
            lambda ch: create_eval_engine(evals, clickhouse=ch),
            evals.eval_engine_host,
            evals.eval_engine_port,
            background=True,
        ),
    ]


class LocalStack:
    """Starts, watches and stops the services of one local stack (one process, one chDB)."""

    def __init__(self, settings: ServiceSettings, services: list[ServiceSpec]) -> None:
        self.settings = settings
        self.services = services
        self.clickhouse: ClickHouse | None = None
        self._runners: list[tuple[ServiceSpec, web.AppRunner]] = []
        self._background: dict[str, asyncio.Task[None]] = {}
        self._starting: dict[str, asyncio.Future[None]] = {}  # the current start of each background service

    async def start(self) -> dict[str, str]:
        """Start every foreground service, in order, and launch the background ones; returns
        name → URL for those with a port (a background one answers once it has started)."""
        await ensure_topics(self.settings)
        self.clickhouse = create_clickhouse(
            self.settings.clickhouse_url, self.settings.clickhouse_database, self.settings.clickhouse_read_policy()
        )
        await apply_migrations(self.clickhouse)
        urls: dict[str, str] = {}
        try:
            for spec in self.services:
                if spec.port is not None:
                    urls[spec.name] = f"http://{spec.host}:{spec.port}"
                if spec.background:
                    self._background[spec.name] = asyncio.create_task(
                        self._start_background(spec), name=f"start-{spec.name}"
                    )
                else:
                    await self._start(spec)
        except BaseException:
            await self.stop()
            raise
        return urls

    async def _start_background(self, spec: ServiceSpec) -> None:
        """Start a stream processor, retrying a failed start (the broker may be restarting) after
        1, 2, 4, 8 s; it counts as dead only once the last attempt failed."""
        for attempt in range(1, BACKGROUND_START_ATTEMPTS + 1):
            try:
                await self._start_watched(spec)
                return
            except Exception as exc:
                if attempt == BACKGROUND_START_ATTEMPTS:
                    raise
                delay = float(2 ** (attempt - 1))
                log.warning(
                    "service_start_failed_retrying",
                    service=spec.name,
                    error=f"{type(exc).__name__}: {exc}"[:300],
                    attempt=attempt,
                    retry_in=delay,
                )
                await asyncio.sleep(delay)

    async def _start_watched(self, spec: ServiceSpec) -> None:
        """:meth:`_start`, saying every ``SLOW_START_WARN_SECONDS`` that it is still going (a
        stream processor's start can hang: seen when the alerter, not yet a static group member,
        waited out a dead member's session and the broker restarted meanwhile; its ``/readyz``
        stays 503 then)."""
        started = time.monotonic()
        start = self._starting[spec.name] = asyncio.ensure_future(self._start(spec))
        try:
            while not await _settled(start, SLOW_START_WARN_SECONDS):
                log.warning("service_still_starting", service=spec.name, seconds=round(time.monotonic() - started))
        except asyncio.CancelledError:
            start.cancel()
            raise
        start.result()

    async def _start(self, spec: ServiceSpec) -> None:
        assert self.clickhouse is not None
        started = time.monotonic()
        app = spec.factory(self.clickhouse)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        try:
            await runner.setup()
        except BaseException:
            await app.cleanup()  # exits the cleanup contexts that were entered
            raise
        self._runners.append((spec, runner))
        if spec.port is not None:
            await web.TCPSite(runner, spec.host, spec.port).start()
        log.info("service_started", service=spec.name, port=spec.port, seconds=round(time.monotonic() - started, 2))

    def dead(self) -> dict[str, str]:
        """``service → reason`` for each service that died: a failing liveness check, or a
        background service whose start failed. Empty while all are alive."""
        dead: dict[str, str] = {}
        for name, task in self._background.items():
            if task.done() and not task.cancelled() and task.exception() is not None:
                exc = task.exception()
                dead[name] = f"failed to start: {type(exc).__name__}: {exc}"[:500]
        for spec, runner in self._runners:
            reasons = dead_checks(runner.app)
            if reasons:
                dead[spec.name] = "; ".join(f"{check}: {why}" for check, why in reasons.items())
        return dead

    async def stop(self, timeout: float = 6.0) -> list[str]:
        """Stop in reverse order (stream processors, then the gateway stops accepting before the
        worker drains), all within ``timeout`` seconds: a service that has not stopped by its
        share of the time is abandoned (its clean-up cancelled, not waited for: a clean-up that
        swallows its cancellation, as a faust app still starting can, must not hold the stop).
        Returns the abandoned ones."""
        deadline = time.monotonic() + timeout
        abandoned: list[str] = []
        for name, task in self._background.items():
            start = self._starting.get(name)
            for step in (task, start):
                if step is not None and not step.done():
                    step.cancel()
                    if not await _settled(step, max(deadline - time.monotonic(), 0.1)):
                        abandoned.append(f"{name} (still starting)")
                        log.warning("service_start_abandoned", service=name)
                        break
        self._background.clear()
        self._starting.clear()
        while self._runners:
            spec, runner = self._runners.pop()
            share = max((deadline - time.monotonic()) / (len(self._runners) + 1), 0.5)
            cleanup = asyncio.ensure_future(runner.cleanup())
            try:
                if await _settled(cleanup, share):
                    cleanup.result()
                    log.info("service_stopped", service=spec.name)
                else:
                    cleanup.cancel()
                    abandoned.append(spec.name)
                    log.warning("service_stop_abandoned", service=spec.name, seconds=round(share, 1))
            except asyncio.CancelledError:
                # aiokafka's consumer.stop() can re-raise the cancellation of its own fetch task
                # (seen with the broker gone); only a cancellation of this stop() goes on up.
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
                log.warning("service_stop_failed", service=spec.name, error="cancelled inside its clean-up")
            except Exception as exc:
                log.warning("service_stop_failed", service=spec.name, error=repr(exc)[:300])
        if abandoned:
            # The abandoned clean-ups' async generators are finalised when the loop closes, each
            # with a traceback that says nothing more than the warning above.
            logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        if self.clickhouse is not None:
            closing = asyncio.ensure_future(asyncio.to_thread(self.clickhouse.close))
            if not await _settled(closing, 3.0):
                abandoned.append("clickhouse (a call still running)")
            self.clickhouse = None
        return abandoned


async def _settled(task: asyncio.Future[Any], timeout: float) -> bool:
    """Whether ``task`` finished within ``timeout`` (unlike ``wait_for``, never waits for a
    cancellation to be honoured)."""
    done, _ = await asyncio.wait({task}, timeout=timeout)
    return bool(done)
