"""``trulayer-local``: the local stack's commands (``make up`` / ``make down`` call these).

``up``   install and start Kafka and Redis, create the topics, make sure a bootstrap tenant
         exists, start every service in this process, print the URLs and an API key, and run
         until Ctrl-C, which stops the services and then Kafka and Redis.
``down`` stop a stack left behind (its process, Kafka, Redis), by their pidfiles.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import get_args

import orjson
from pydantic import ValidationError

from control_engine.cli import create_tenant_via_kafka
from control_engine.session_tokens import mint_session_token
from control_engine.settings import ControlEngineSettings
from trulayer_common import runtime
from trulayer_common.config import ConfigLogReader, Plan, hash_api_key
from trulayer_common.kafka import ensure_topics
from trulayer_common.logging import configure_logging
from trulayer_common.secret_box import generate_key_spec
from trulayer_common.settings import ServiceSettings
from trulayer_local import infra
from trulayer_local.stack import LocalStack, default_services


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


async def run_stack(cfg: infra.InfraConfig) -> None:
    settings = ServiceSettings()
    stack = LocalStack(settings, default_services())
    _say("creating the topics and the bootstrap tenant")
    await ensure_topics(settings)
    # Before the services start: each one reads the config log up to its end before serving,
    # so the key printed below is accepted from the first request.
    tenant = await bootstrap_tenant(cfg.data_dir / "bootstrap.json")
    _say("starting the services (control-engine, ingest-worker, alerter, eval-engine, gateway) on embedded chDB")
    urls = await stack.start()
    runtime.settle_gc()
    session = mint_session_token(ControlEngineSettings(), tenant["tenant_id"], "owner")
    try:
        print(
            "\nTruLayer local stack is up.\n"
            f"  Gateway         {urls['gateway']}\n"
            f"  Control engine  {urls['control-engine']}\n"
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
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        _say("stopping the services")
    finally:
        await stack.stop()


def up(repo: Path) -> int:
    cfg = infra_config(repo)
    export_service_env(cfg)
    configure_logging(os.environ.get("LOG_LEVEL", "INFO"), json=None)
    pidfile = cfg.data_dir / "run" / "stack.pid"
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    try:
        infra.start_all(cfg)
        pidfile.write_text(str(os.getpid()))
        runtime.run(run_stack(cfg))
    except infra.InfraError as exc:
        print(f"[up] error: {exc}", file=sys.stderr, flush=True)
        return 1
    except ValidationError as exc:  # an unsafe or invalid setting: say which, no traceback
        print(f"[up] configuration refused: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        pass
    finally:
        with contextlib.suppress(FileNotFoundError):
            pidfile.unlink()
        _say("stopping Kafka and Redis")
        infra.stop_all(cfg)
    return 0


def down(repo: Path) -> int:
    cfg = infra_config(repo)
    pidfile = cfg.data_dir / "run" / "stack.pid"
    if pidfile.exists():
        pid = int(pidfile.read_text().strip() or 0)
        cmdline = Path(f"/proc/{pid}/cmdline")
        if pid and cmdline.exists() and b"trulayer" in cmdline.read_bytes():
            print(f"[down] stopping the stack process {pid}", flush=True)
            os.kill(pid, signal.SIGTERM)
        pidfile.unlink(missing_ok=True)
    infra.stop_all(cfg)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trulayer-local", description="the TruLayer local stack")
    parser.add_argument("command", choices=["up", "down"])
    args = parser.parse_args(argv)
    repo = infra.find_repo_root()
    return up(repo) if args.command == "up" else down(repo)


if __name__ == "__main__":
    sys.exit(main())
