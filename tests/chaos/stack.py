"""A real ``trulayer-local up`` process on its own ports and data directory, driven from outside
as an operator (or a crash) would: started, killed with SIGKILL, stopped with SIGINT; and a
second gateway process (``python -m gateway``) as a replica beside it.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from trulayer_local import infra

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ChaosStack:
    data_dir: Path
    ports: dict[str, int] = field(default_factory=dict)
    proc: asyncio.subprocess.Process | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    # Shared with the gateway replica, which forwards control-plane routes like any gateway.
    internal_token: str = field(default_factory=lambda: secrets.token_hex(32))
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        names = ("kafka", "controller", "redis", "gateway", "control", "worker", "alerter", "evals")
        self.ports = self.ports or {name: free_port() for name in names}
        self.log_path = self.data_dir / "chaos-stack.log"

    @property
    def cfg(self) -> infra.InfraConfig:
        return infra.InfraConfig(
            repo_root=REPO,
            data_dir=self.data_dir.resolve(),
            kafka_port=self.ports["kafka"],
            kafka_controller_port=self.ports["controller"],
            redis_port=self.ports["redis"],
        )

    def url(self, service: str = "gateway") -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    @property
    def env(self) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "CLICKHOUSE_URL")
        }
        env.update(
            TRULAYER_DATA_DIR=str(self.data_dir),
            TRULAYER_KAFKA_PORT=str(self.ports["kafka"]),
            TRULAYER_KAFKA_CONTROLLER_PORT=str(self.ports["controller"]),
            TRULAYER_REDIS_PORT=str(self.ports["redis"]),
            GATEWAY_PORT=str(self.ports["gateway"]),
            CONTROL_PORT=str(self.ports["control"]),
            WORKER_PORT=str(self.ports["worker"]),
            ALERTER_PORT=str(self.ports["alerter"]),
            EVAL_ENGINE_PORT=str(self.ports["evals"]),
            LOG_LEVEL="WARNING",
            INTERNAL_TOKEN=self.internal_token,
        )
        env.update(self.extra_env)
        return env

    @property
    def api_key(self) -> str:
        return str(json.loads((self.data_dir / "bootstrap.json").read_text())["api_key"])

    async def spawn(self) -> int:
        """Spawn ``trulayer-local up`` and return at once; returns the log offset of this run."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                str(BIN / "trulayer-local"), "up", cwd=REPO, env=self.env, stdout=log, stderr=log
            )
        return offset

    async def start(self, timeout: float = 240.0) -> float:
        """Spawn ``trulayer-local up``; return once it printed its banner. Returns the seconds
        from the spawn to the gateway's first ``201`` on ``POST /v1/ingest``."""
        spawned = time.monotonic()
        offset = await self.spawn()
        assert self.proc is not None
        key: str | None = None
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            while time.monotonic() - spawned < timeout:
                if self.proc.returncode is not None:
                    raise AssertionError(f"stack exited ({self.proc.returncode}):\n{self.output(offset)[-4000:]}")
                if key is None and (self.data_dir / "bootstrap.json").exists():
                    key = self.api_key
                if key is not None and await _ingest_ok(http, self.url(), key):
                    answered = time.monotonic() - spawned
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"gateway not accepting after {timeout}s:\n{self.output(offset)[-4000:]}")
            while "Press Ctrl-C" not in self.output(offset):
                if time.monotonic() - spawned > timeout:
                    raise AssertionError(f"no banner after {timeout}s:\n{self.output(offset)[-4000:]}")
                await asyncio.sleep(0.1)
        return answered

    def output(self, offset: int = 0) -> str:
        with self.log_path.open("rb") as fh:
            fh.seek(offset)
            return fh.read().decode(errors="replace")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)

    async def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), timeout)

    def leftovers(self) -> list[str]:
        """Kafka/Redis of this stack still running."""
        return [n for n, pid in (("kafka", infra.kafka_pid(self.cfg)), ("redis", infra.redis_pid(self.cfg))) if pid]

    async def stop(self, timeout: float = 60.0) -> tuple[int, float]:
        """SIGINT (Ctrl-C); returns (exit code, seconds until the process and Kafka/Redis were gone)."""
        assert self.proc is not None
        started = time.monotonic()
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
        code = await self.wait_exit(timeout)
        while infra.kafka_pid(self.cfg) is not None or infra.redis_pid(self.cfg) is not None:
            if time.monotonic() - started > timeout:
                break
            await asyncio.sleep(0.05)
        return code, time.monotonic() - started

    def force_down(self) -> None:
        """Leave nothing behind whatever happened (test clean-up)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        for pid in (infra.kafka_pid(self.cfg), infra.redis_pid(self.cfg)):
            if pid is not None:
                os.kill(pid, signal.SIGKILL)


async def _ingest_ok(http: aiohttp.ClientSession, url: str, key: str) -> bool:
    body = {"name": "chaos.probe", "model": "chaos-probe", "latency_ms": 1}
    try:
        async with http.post(f"{url}/v1/ingest", json=body, headers={"Authorization": f"Bearer {key}"}) as resp:
            return resp.status == 201
    except (aiohttp.ClientError, TimeoutError):
        return False


async def ready(http: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with http.get(f"{url}/readyz") as resp:
            return resp.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


@dataclass
class GatewayReplica:
    """A second gateway process against the stack's Kafka and Redis (its reads would use a
    chDB of its own; ingest does not touch ClickHouse)."""

    stack: ChaosStack
    port: int = field(default_factory=free_port)
    proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 120.0) -> float:
        cfg = self.stack.cfg
        env = {
            **self.stack.env,
            "KAFKA_BOOTSTRAP_SERVERS": cfg.bootstrap_servers,
            "REDIS_URL": cfg.redis_url,
            "CLICKHOUSE_URL": f"chdb://{cfg.data_dir / 'replica-chdb'}",
            "SESSION_HS256_SECRET": (cfg.data_dir / "session.secret").read_text().strip(),
            "CONTROL_ENGINE_URL": self.stack.url("control"),
            "GATEWAY_PORT": str(self.port),
        }
        log = (cfg.data_dir / "chaos-replica.log").open("ab")
        started = time.monotonic()
        self.proc = await asyncio.create_subprocess_exec(
            str(BIN / "python"), "-m", "gateway", cwd=REPO, env=env, stdout=log, stderr=log
        )
        log.close()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http:
            while not await ready(http, self.url):
                if self.proc.returncode is not None or time.monotonic() - started > timeout:
                    raise AssertionError("gateway replica did not become ready")
                await asyncio.sleep(0.1)
        return time.monotonic() - started

    async def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, as a rolling restart would; SIGKILL if it does not exit in time."""
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
