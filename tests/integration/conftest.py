"""The integration harness: the test session's real Kafka and Redis (started by ``make test``
on their own ports) and a real embedded chDB, with the services composed in this process.

The services run through the same factories as the local stack; the harness keeps a handle on
the ingest-worker's writers so tests can kill the trace writer without a clean shutdown and
start a new one.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from alerter.app import create_app as create_alerter
from alerter.settings import AlerterSettings
from control_engine.app import create_app as create_control_engine
from control_engine.config_log import ConfigLogWriter
from control_engine.session_tokens import mint_session_token
from control_engine.settings import ControlEngineSettings
from control_engine.tenants import CreatedTenant, create_tenant
from eval_engine.app import create_app as create_eval_engine
from eval_engine.settings import EvalEngineSettings
from gateway.app import create_app as create_gateway
from gateway.resources import config_state
from gateway.settings import GatewaySettings
from ingest_worker.settings import IngestWorkerSettings
from ingest_worker.writers import (
    TableWriter,
    alerts_writer,
    dead_letters_writer,
    decisions_writer,
    evaluations_writer,
    feedback_writer,
    trace_writer,
)
from trulayer_common.clickhouse import ClickHouse, apply_migrations, create_clickhouse
from trulayer_common.config import ConfigState, hash_api_key
from trulayer_common.kafka import create_producer, ensure_topics
from trulayer_common.live import LivePublisher
from trulayer_common.redis import create_redis
from trulayer_common.secret_box import generate_key_spec
from trulayer_common.settings import ServiceSettings

REPO = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("TRULAYER_DATA_DIR", REPO / ".trulayer" / "test")).resolve()
KAFKA = f"127.0.0.1:{os.environ.get('TRULAYER_KAFKA_PORT', '39092')}"
REDIS = f"redis://127.0.0.1:{os.environ.get('TRULAYER_REDIS_PORT', '36379')}/0"
INTERNAL_TOKEN = f"tests-internal-{uuid.uuid4().hex}"
SESSION_SECRET = f"tests-session-secret-{uuid.uuid4().hex}"
CONFIG_SECRET_KEYS = generate_key_spec("tests")
# The alerting tests' webhook receivers listen on 127.0.0.1: the operator allow-list lets the
# alerter and the control-engine reach exactly that address (the rest of 127/8 stays refused).
EGRESS_ALLOWLIST = "127.0.0.1/32"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path):
            item.add_marker(pytest.mark.integration)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Poll ``check`` until it returns a truthy value; fail with the last value at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")


@dataclass
class Tenant:
    created: CreatedTenant

    @property
    def key(self) -> str:
        return self.created.secret

    @property
    def id(self) -> str:
        return self.created.tenant.id

    @property
    def project_id(self) -> str:
        return self.created.project.id

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


class Harness:
    def __init__(self) -> None:
        self.base = ServiceSettings(
            kafka_bootstrap_servers=KAFKA, redis_url=REDIS, clickhouse_url=f"chdb://{DATA_DIR / 'chdb'}"
        )
        self.control_port = free_port()
        # GuardLayer's key creation is served by the control-engine only when it is on there too;
        # the shared gateway keeps it off (a test starts its own gateway with it on).
        self.control_settings = ControlEngineSettings(
            **self._shared(),
            internal_token=INTERNAL_TOKEN,
            session_hs256_secret=SESSION_SECRET,
            guardlayer_compat=True,
        )
        self.gateway_settings = GatewaySettings(
            **self._shared(),
            internal_token=INTERNAL_TOKEN,
            session_hs256_secret=SESSION_SECRET,
            control_engine_url=f"http://127.0.0.1:{self.control_port}",
        )
        self.worker_settings = IngestWorkerSettings(**self._shared(), batch_max_wait_ms=200)
        # The alerter starts on first use (alerting tests only), on a consumer group of its own.
        self.alerter_settings = AlerterSettings(
            **self._shared(),
            alerter_app_id=f"tests-alerter-{uuid.uuid4().hex[:8]}",
            alerter_data_dir=str(DATA_DIR / "alerter"),
            webhook_backoff_base_seconds=0.05,
            webhook_backoff_max_seconds=0.2,
            alerter_signals_interval_seconds=0.2,
        )
        # The eval-engine starts on first use (eval tests), on groups of its own; its judge is the
        # fake OpenAI-compatible server of tests/integration/eval_support.py.
        self.eval_settings: EvalEngineSettings | None = None
        self.eval_app: web.Application | None = None
        self._eval_runner: web.AppRunner | None = None
        self.quality_writers: list[TableWriter] = []
        self.alerter_app: web.Application | None = None
        self._alerter_runner: web.AppRunner | None = None
        self.alerts_writer: TableWriter
        self.decisions_writer: TableWriter
        self.clickhouse: ClickHouse
        self.writer: ConfigLogWriter
        self.worker: TableWriter
        self.gateway_url = ""
        self._runner: web.AppRunner | None = None
        self._control_runner: web.AppRunner | None = None
        self.control_app: web.Application
        self._producer: Any = None
        self.gateway_app: web.Application

    def _shared(self) -> dict[str, Any]:
        return {
            "kafka_bootstrap_servers": self.base.kafka_bootstrap_servers,
            "redis_url": self.base.redis_url,
            "clickhouse_url": self.base.clickhouse_url,
            "config_secret_keys": CONFIG_SECRET_KEYS,
            "egress_allowlist": EGRESS_ALLOWLIST,
        }

    async def start(self) -> None:
        await ensure_topics(self.base)
        self.clickhouse = create_clickhouse(self.base.clickhouse_url, self.base.clickhouse_database)
        await apply_migrations(self.clickhouse)
        self._producer = create_producer(self.base, client_id="tests-control")
        await self._producer.start()
        self.writer = ConfigLogWriter(self._producer)
        # The trace writer announces stored traces to the live tail, as in the ingest-worker.
        self.redis = create_redis(self.base.redis_url)
        self.live = LivePublisher(self.redis)
        self.worker = trace_writer(self.worker_settings, self.clickhouse, self.live)
        await self.worker.start()
        self.alerts_writer = alerts_writer(self.worker_settings, self.clickhouse)
        await self.alerts_writer.start()
        for factory in (feedback_writer, evaluations_writer, dead_letters_writer):
            writer = factory(self.worker_settings, self.clickhouse)
            await writer.start()
            self.quality_writers.append(writer)
        self.decisions_writer = decisions_writer(self.worker_settings, self.clickhouse)
        await self.decisions_writer.start()
        self.control_app = create_control_engine(self.control_settings, clickhouse=self.clickhouse)
        self._control_runner = web.AppRunner(self.control_app, access_log=None)
        await self._control_runner.setup()
        await web.TCPSite(self._control_runner, "127.0.0.1", self.control_port).start()
        self.gateway_app, self._runner, self.gateway_url = await self.start_gateway(self.gateway_settings)

    async def start_gateway(self, settings: GatewaySettings) -> tuple[web.Application, web.AppRunner, str]:
        app = create_gateway(settings, clickhouse=self.clickhouse)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return app, runner, f"http://127.0.0.1:{port}"

    async def restart_worker(self, **overrides: Any) -> TableWriter:
        settings = self.worker_settings.model_copy(update=overrides)
        self.worker = trace_writer(settings, self.clickhouse, self.live)
        await self.worker.start()
        return self.worker

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._control_runner is not None:
            await self._control_runner.cleanup()
        await self.stop_alerter()
        await self.stop_eval_engine()
        for writer in self.quality_writers:
            await writer.stop()
        await self.decisions_writer.stop()
        await self.alerts_writer.stop()
        await self.worker.stop()
        await self._producer.stop()
        await self.redis.aclose()
        self.clickhouse.close()

    async def start_alerter(self) -> web.Application:
        """Start the alerter (once; again after :meth:`stop_alerter`): resumes its group and changelogs."""
        if self.alerter_app is None:
            self.alerter_app = create_alerter(self.alerter_settings)
            self._alerter_runner = web.AppRunner(self.alerter_app, access_log=None)
            await self._alerter_runner.setup()
        return self.alerter_app

    async def start_eval_engine(self, judge_url: str, **overrides: Any) -> web.Application:
        """Start the eval-engine (once; again after :meth:`stop_eval_engine`: resumes its groups)."""
        if self.eval_settings is None:
            suffix = uuid.uuid4().hex[:8]
            self.eval_settings = EvalEngineSettings(
                **self._shared(),
                eval_group_id=f"tests-evals-{suffix}",
                eval_rules_group_id=f"tests-eval-rules-{suffix}",
                judge_base_url=judge_url,
                judge_timeout_seconds=0.5,
                judge_max_attempts=3,
                judge_backoff_base_seconds=0.05,
                judge_backoff_max_seconds=0.2,
                judge_input_cost_per_mtok=1.0,
                judge_output_cost_per_mtok=2.0,
                eval_retry_base_seconds=0.5,
                eval_retry_max_seconds=1.0,
                trace_wait_seconds=10.0,
                rules_batch_wait_ms=100,
                **overrides,
            )
        if self.eval_app is None:
            self.eval_app = create_eval_engine(self.eval_settings, clickhouse=self.clickhouse)
            self._eval_runner = web.AppRunner(self.eval_app, access_log=None)
            await self._eval_runner.setup()
        return self.eval_app

    async def stop_eval_engine(self) -> None:
        if self._eval_runner is not None:
            await self._eval_runner.cleanup()
        self._eval_runner = None
        self.eval_app = None

    async def stop_alerter(self) -> None:
        if self._alerter_runner is not None:
            await self._alerter_runner.cleanup()
        self._alerter_runner = None
        self.alerter_app = None

    async def new_tenant(self, plan: str = "pro", state: ConfigState | None = None) -> Tenant:
        """A fresh tenant, returned once the gateway's config view has its key."""
        created = await create_tenant(self.writer, f"t-{uuid.uuid4().hex[:8]}", plan)  # type: ignore[arg-type]
        view = state or self.gateway_app[config_state]

        async def known() -> bool:
            return view.key_by_hash(hash_api_key(created.secret)) is not None

        await eventually(known, timeout=10)
        return Tenant(created)

    def session_headers(self, tenant_id: str, role: str = "owner", subject: str = "tester") -> dict[str, str]:
        """``Authorization`` for a dashboard session of ``tenant_id`` (HS256, the harness's secret)."""
        token = mint_session_token(self.control_settings, tenant_id, role, subject)  # type: ignore[arg-type]
        return {"Authorization": f"Bearer {token}"}

    async def stored_traces(self, tenant_id: str) -> list[dict[str, Any]]:
        return await self.clickhouse.query(
            f"SELECT id FROM {self.clickhouse.database}.traces FINAL WHERE tenant_id = {{t:String}}",
            {"t": tenant_id},
        )


@pytest.fixture(scope="session")
async def harness() -> AsyncIterator[Harness]:
    h = Harness()
    await h.start()
    yield h
    await h.stop()


@pytest.fixture(scope="session")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


@pytest.fixture
async def tenant(harness: Harness) -> Tenant:
    return await harness.new_tenant()


def trace(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": f"tr-{uuid.uuid4().hex}", "name": "chat", "model": "gpt-4o", "latency_ms": 100}
    body.update(fields)
    return body


@pytest.fixture(scope="session")
async def judge() -> AsyncIterator[Any]:
    """The fake OpenAI-compatible judge of the eval tests (one server for the session)."""
    from tests.integration.eval_support import FakeJudge

    fake = FakeJudge()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def eval_engine(harness: Harness, judge: Any) -> Harness:
    """The harness with its eval-engine running against the fake judge."""
    await harness.start_eval_engine(judge.url)
    return harness
