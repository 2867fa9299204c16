"""``trulayer-local``: the local stack's commands (``make up`` / ``make down`` call these).

``up``   install and start Kafka and Redis, create the topics, make sure a bootstrap tenant
         exists, start every service in this process, print the URLs and an API key, and run
         until Ctrl-C or SIGTERM, which stops the services and then Kafka and Redis within
         15 s (forcing what does not stop). Meanwhile Kafka and Redis are restarted when they
         die (:mod:`trulayer_local.supervisor`); a service that dies, or Kafka/Redis that cannot
         be restarted, stops everything and exits 1 with the reason.
``down`` stop a stack left behind (its process, hung or not, Kafka, Redis), by their pidfiles.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import get_args

import orjson
from pydantic import ValidationError

from control_engine.cli import create_tenant_via_kafka
from control_engine.session_tokens import mint_session_token
from control_engine.settings import ControlEngineSettings
from trulayer_common import runtime
from trulayer_common.clickhouse.embedded_lock import ChdbLockedError
from trulayer_common.config import ConfigLogReader, Plan, hash_api_key
from trulayer_common.kafka import ensure_topics
from trulayer_common.logging import configure_logging
from trulayer_common.secret_box import generate_key_spec
from trulayer_common.settings import ServiceSettings
from trulayer_local import infra
from trulayer_local.shutdown import (
    FORCE_AFTER_SECONDS,
    INFRA_STOP_SECONDS,
    SERVICES_STOP_SECONDS,
    ShutdownGuard,
    pid_alive,
    running_stack_pid,
    stack_pidfile,
)
from trulayer_local.stack import LocalStack, default_services
from trulayer_local.supervisor import InfraSupervisor, SupervisionError


def _say(message: str) -> None:
    print(f"[up] {message}", flush=True)


def infra_config(repo: Path) -> infra.InfraConfig:
    return infra.InfraConfig(
        repo_root=repo,
        data_dir=Path(os.environ.get("TRULAYER_DATA_DIR", repo / ".trulayer")).resolve(),
        kafka_port=int(os.environ.get("TRULAYER_KAFKA_PORT", "9092")),
        kafka_controller_port=int(os.environ.get("TRULAYER_KAFKA_CONTROLLER_PORT", "9093")),
        redis_port=int(os.environ.get("TRULAYER_REDIS_PORT", "6379")),
    )


def export_service_env(cfg: infra.InfraConfig) -> None:
    """Point every service's settings at this stack, unless the caller set them explicitly."""
    os.environ.setdefault("KAFKA_BOOTSTRAP_SERVERS", cfg.bootstrap_servers)
    os.environ.setdefault("REDIS_URL", cfg.redis_url)
    os.environ.setdefault("CLICKHOUSE_URL", f"chdb://{cfg.data_dir / 'clickhouse'}")
    os.environ.setdefault("ALERTER_DATA_DIR", str(cfg.data_dir / "alerter"))
    os.environ.setdefault("SESSION_HS256_SECRET", local_session_secret(cfg.data_dir))
    # One process, one member per consumer group: static membership lets a stack restarted
    # after a crash take its partitions back at once.
    os.environ.setdefault("KAFKA_GROUP_INSTANCE_ID", "local")
    os.environ.setdefault("CONFIG_SECRET_KEYS", local_config_secret_keys(cfg.data_dir))
    # One process runs every service on the engine embedded in it: reads get one of its threads
    # at a time (one core), and while ingest runs, scans a third of that core's time, so ingest
    # keeps the rest (docs/reads.md).
    os.environ.setdefault("CLICKHOUSE_READ_CONCURRENCY", "1")
    os.environ.setdefault("CLICKHOUSE_READ_MAX_THREADS", "1")
    os.environ.setdefault("CLICKHOUSE_READ_DUTY_CYCLE", "0.3")


def local_session_secret(data_dir: Path) -> str:
    """The HS256 secret of local session tokens: made once per data dir (mode 600), so tokens
    minted by ``trulayer sessions token`` keep working across restarts of the stack."""
    path = data_dir / "session.secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def local_config_secret_keys(data_dir: Path) -> str:
    """The key that seals webhook secrets on the local config log: made once per data dir
    (mode 600), like the session secret; the secrets sealed with it open after a restart."""
    path = data_dir / "config-secret.keys"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(generate_key_spec("local1"))
        path.chmod(0o600)
    return path.read_text().strip()


async def bootstrap_tenant(path: Path) -> dict[str, str]:
    """The local tenant's key, created once and kept in ``path`` (mode 600), reused while valid."""
    settings = ControlEngineSettings()
    if path.exists():
        saved: dict[str, str] = orjson.loads(path.read_bytes())
        reader = ConfigLogReader(settings)
        await reader.start()
        try:
            key = reader.state.key_by_hash(hash_api_key(saved.get("api_key", "")))
        finally:
            await reader.stop()
        if key is not None and key.revoked_at is None:
            return saved
        _say("the saved bootstrap key is no longer valid: creating a new tenant")
    plan = os.environ.get("TRULAYER_BOOTSTRAP_PLAN", "enterprise")
    if plan not in get_args(Plan):
        raise infra.InfraError(f"TRULAYER_BOOTSTRAP_PLAN must be one of {get_args(Plan)}, not {plan!r}")
    created = await create_tenant_via_kafka(settings, "local", plan)  # type: ignore[arg-type]
    saved = {
        "tenant_id": created.tenant.id,
        "project_id": created.project.id,
        "api_key": created.secret,
        "plan": created.tenant.plan,
    }
    path.write_bytes(orjson.dumps(saved, option=orjson.OPT_INDENT_2))
    path.chmod(0o600)
    return saved


class StackFailed(Exception):
    """The stack cannot go on (a service died, Kafka or Redis could not be restarted)."""


async def run_stack(cfg: infra.InfraConfig, stop: asyncio.Event, guard: ShutdownGuard) -> None:
    """Start the services, then run until ``stop`` is set; raises :class:`StackFailed` when a
    service dies or Kafka/Redis cannot be restarted. Services are stopped (bounded) on the way out."""
    settings = ServiceSettings()
    stack = LocalStack(settings, default_services())
    supervisor = InfraSupervisor(cfg)
    watching = asyncio.create_task(supervisor.run(), name="infra-supervisor")
    try:
        _say("creating the topics and the bootstrap tenant")
        await ensure_topics(settings)
        # Before the services start: each one reads the config log up to its end before serving,
        # so the key printed below is accepted from the first request.
        tenant = await bootstrap_tenant(cfg.data_dir / "bootstrap.json")
        _say(
            "starting the services on embedded chDB: control-engine, ingest-worker, gateway; "
            "then the alerter and the eval-engine"
        )
        urls = await stack.start()
        runtime.settle_gc()
        runtime.observe_runtime()
        _print_banner(cfg, settings, tenant, urls)
        while not stop.is_set():
            if watching.done():
                watching.result()  # raises SupervisionError
            dead = stack.dead()
            if dead and not stop.is_set():  # stopping anyway: a death now is no failure of the run
                raise StackFailed("; ".join(f"{name} died ({why})" for name, why in dead.items()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
        _say("stopping the services")
    except SupervisionError as exc:
        raise StackFailed(str(exc)) from None
    finally:
        guard.arm()  # whatever ends the run, the stop is bounded
        supervisor.close()
        watching.cancel()
        with contextlib.suppress(BaseException):
            await watching
        abandoned = await stack.stop(timeout=SERVICES_STOP_SECONDS)
        if abandoned:
            _say(f"did not stop in time, abandoned: {', '.join(abandoned)}")
            failure = sys.exc_info()[1]
            if isinstance(failure, StackFailed | SupervisionError):
                print(f"[up] error: {failure}", file=sys.stderr, flush=True)
            guard.finish(1 if isinstance(failure, Exception) else 0)  # does not return


def _print_banner(
    cfg: infra.InfraConfig, settings: ServiceSettings, tenant: dict[str, str], urls: dict[str, str]
) -> None:
    session = mint_session_token(ControlEngineSettings(), tenant["tenant_id"], "owner")
    print(
        "\nTruLayer local stack is up.\n"
        f"  Gateway         {urls['gateway']}\n"
        f"  Control engine  {urls['control-engine']}\n"
        f"  Ingest worker   {urls['ingest-worker']}/readyz\n"
        f"  Alerter         {urls['alerter']}/readyz   Eval engine  {urls['eval-engine']}/readyz (both catch up in "
        "the background)\n"
        f"  Kafka           {cfg.bootstrap_servers}\n"
        f"  Redis           {cfg.redis_url}\n"
        f"  ClickHouse      {settings.clickhouse_url}\n"
        f"  API key         {tenant['api_key']}   (tenant 'local', plan {tenant.get('plan', 'pro')}; "
        f"saved in {cfg.data_dir / 'bootstrap.json'})\n"
        f"  Session token   {session}\n"
        "                  (owner, 1 h; more with: SESSION_HS256_SECRET=$(cat "
        f"{cfg.data_dir / 'session.secret'}) trulayer sessions token --tenant {tenant['tenant_id']} "
        "--role owner)\n\n"
        f"  Try: curl -s -H 'Authorization: Bearer {tenant['api_key']}' {urls['gateway']}/v1/metrics\n\n"
        "Press Ctrl-C to stop everything.",
        flush=True,
    )


async def _serve(cfg: infra.InfraConfig) -> None:
    """:func:`run_stack` with Ctrl-C/SIGTERM wired to a bounded stop (see :class:`ShutdownGuard`)."""
    stop = asyncio.Event()
    guard = ShutdownGuard(cfg, FORCE_AFTER_SECONDS)
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            guard.force(f"second {signal.Signals(signum).name}")
        _say(f"{signal.Signals(signum).name}: stopping everything (forced after {FORCE_AFTER_SECONDS:.0f}s)")
        guard.arm()
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    await run_stack(cfg, stop, guard)


def up(repo: Path) -> int:
    cfg = infra_config(repo)
    export_service_env(cfg)
    configure_logging(os.environ.get("LOG_LEVEL", "INFO"), json=None)
    pidfile = stack_pidfile(cfg)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    other = running_stack_pid(cfg)
    if other is not None:
        print(
            f"[up] error: a stack is already running on {cfg.data_dir} (pid {other}); stop it with make down",
            file=sys.stderr,
            flush=True,
        )
        return 1
    started = time.monotonic()
    code = 0
    try:
        pidfile.write_text(str(os.getpid()))
        infra.start_all(cfg)
        runtime.run(_serve(cfg))
    except StackFailed as exc:
        print(f"[up] error: {exc}; stopping everything", file=sys.stderr, flush=True)
        code = 1
    except (infra.InfraError, ChdbLockedError) as exc:
        print(f"[up] error: {exc}", file=sys.stderr, flush=True)
        code = 1
    except ValidationError as exc:  # an unsafe or invalid setting: say which, no traceback
        print(f"[up] configuration refused: {exc}", file=sys.stderr, flush=True)
        code = 2
    except KeyboardInterrupt:
        pass
    finally:
        stopping = time.monotonic()
        _say("stopping Kafka and Redis")
        infra.stop_all(cfg, timeout=INFRA_STOP_SECONDS)
        with contextlib.suppress(FileNotFoundError):
            pidfile.unlink()
        _say(f"stopped ({time.monotonic() - stopping:.1f}s for Kafka and Redis; up {time.monotonic() - started:.0f}s)")
    return code


def down(repo: Path) -> int:
    """Stop a stack left behind: its process (SIGTERM, SIGKILL when it hangs), Kafka and Redis."""
    cfg = infra_config(repo)
    pid = running_stack_pid(cfg)
    if pid is not None:
        print(f"[down] stopping the stack process {pid}", flush=True)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + FORCE_AFTER_SECONDS + 2
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if pid_alive(pid):
            print(f"[down] the stack process {pid} did not stop: SIGKILL", flush=True)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    stack_pidfile(cfg).unlink(missing_ok=True)
    infra.stop_all(cfg, timeout=INFRA_STOP_SECONDS)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trulayer-local", description="the TruLayer local stack")
    parser.add_argument("command", choices=["up", "down"])
    args = parser.parse_args(argv)
    repo = infra.find_repo_root()
    return up(repo) if args.command == "up" else down(repo)


if __name__ == "__main__":
    sys.exit(main())
