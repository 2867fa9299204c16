"""Every service in one process, on one event loop, sharing one embedded chDB (DESIGN.md's
local mode). chDB allows one process per data directory, hence one process.

Services plug in as :class:`ServiceSpec` entries: a name, an app factory and a port (None for
a service with no public routes in local mode). Each runs exactly as it would alone, through
its own ``create_app``; only the ClickHouse client is shared.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

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
from trulayer_common.kafka import ensure_topics
from trulayer_common.logging import get_logger
from trulayer_common.settings import ServiceSettings
from trulayer_local.infra import InfraError

log = get_logger(__name__)


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    factory: Callable[[ClickHouse], web.Application]
    host: str
    port: int | None


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
    """The services of the local stack, in start order (the control-engine owns config first)."""
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
        ServiceSpec("ingest-worker", lambda ch: create_ingest_worker(worker, clickhouse=ch), worker.worker_host, None),
        # The faust app runs on this same loop (started in the alerter's cleanup_ctx).
        ServiceSpec("alerter", lambda _ch: create_alerter(alerter), alerter.alerter_host, None),
        # Its loops run on this loop too; it shares the embedded chDB (reads stored traces).
        ServiceSpec(
            "eval-engine",
            lambda ch: create_eval_engine(evals, clickhouse=ch),
            evals.eval_engine_host,
            None,
        ),
        ServiceSpec(
            "gateway",
            lambda ch: create_gateway(gateway, clickhouse=ch),
            gateway.gateway_host,
            gateway.gateway_port,
        ),
    ]


class LocalStack:
    def __init__(self, settings: ServiceSettings, services: list[ServiceSpec]) -> None:
        self.settings = settings
        self.services = services
        self.clickhouse: ClickHouse | None = None
        self._runners: list[tuple[ServiceSpec, web.AppRunner]] = []

    async def start(self) -> dict[str, str]:
        """Start every service; returns name → URL for those with a port."""
        await ensure_topics(self.settings)
        self.clickhouse = create_clickhouse(
            self.settings.clickhouse_url, self.settings.clickhouse_database, self.settings.clickhouse_read_policy()
        )
        await apply_migrations(self.clickhouse)
        urls: dict[str, str] = {}
        try:
            for spec in self.services:
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
                    urls[spec.name] = f"http://{spec.host}:{spec.port}"
                log.info("service_started", service=spec.name, port=spec.port)
        except BaseException:
            await self.stop()
            raise
        return urls

    async def stop(self) -> None:
        """Stop in reverse order: the gateway stops accepting before the worker drains."""
        while self._runners:
            spec, runner = self._runners.pop()
            await runner.cleanup()
            log.info("service_stopped", service=spec.name)
        if self.clickhouse is not None:
            self.clickhouse.close()
            self.clickhouse = None
