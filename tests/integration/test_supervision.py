"""Local supervision: Kafka/Redis restarted when they die, or the stack stopped with the reason
when they cannot be; a service that dies stops the stack with exit 1; ``trulayer-local down``
stops a hung stack process; a chDB directory held by another process is explained."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.chaos.stack import BIN, REPO, ChaosStack
from tests.integration.conftest import DATA_DIR, free_port
from trulayer_common.clickhouse.embedded_lock import ChdbLockedError, check_chdb_lock
from trulayer_local import infra
from trulayer_local.supervisor import SUPERVISED, InfraSupervisor, SupervisionError


async def test_supervisor_restarts_redis_then_gives_up_with_the_reason():
    cfg = infra.InfraConfig(
        repo_root=REPO,
        data_dir=DATA_DIR / "supervised",
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        redis_port=free_port(),
    )
    redis_only = [p for p in SUPERVISED if p.name == "redis"]
    await asyncio.to_thread(infra.start_redis, cfg)
    supervisor = InfraSupervisor(cfg, interval=0.1, max_attempts=2, first_backoff=0.1, parts=redis_only)
    watching = asyncio.create_task(supervisor.run())
    blocker = socket.socket()
    try:
        first = infra.redis_pid(cfg)
        assert first is not None
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while supervisor.restarts["redis"] == 0:
            assert not watching.done(), watching
            assert time.monotonic() < deadline, "redis not restarted"
            await asyncio.sleep(0.05)
        second = infra.redis_pid(cfg)
        assert second not in (None, first)

        # Now it cannot come back: something else takes its port while it is down.
        watching.cancel()
        os.kill(second, signal.SIGKILL)
        await asyncio.to_thread(_wait_gone, cfg)
        await asyncio.to_thread(_take_port, blocker, cfg.redis_port)
        supervisor = InfraSupervisor(cfg, interval=0.1, max_attempts=2, first_backoff=0.1, parts=redis_only)
        with pytest.raises(SupervisionError, match=r"redis died and could not be started again .*in use"):
            await asyncio.wait_for(supervisor.run(), 30)
    finally:
        blocker.close()
        supervisor.close()
        watching.cancel()
        await asyncio.to_thread(infra.stop_redis, cfg)


def _take_port(sock: socket.socket, port: int) -> None:
    """Listen on ``port`` as soon as the killed server's socket is released (it can linger briefly)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    deadline = time.monotonic() + 10
    while True:
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _wait_gone(cfg: infra.InfraConfig) -> None:
    while infra.redis_pid(cfg) is not None:
        time.sleep(0.01)


async def test_a_service_that_dies_stops_the_stack_with_exit_1():
    # The alerter cannot create its state directory: it dies while the gateway already serves.
    blocked = DATA_DIR / "dying-stack-file"
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_text("not a directory")
    stack = ChaosStack(DATA_DIR / "dying-stack", extra_env={"ALERTER_DATA_DIR": str(blocked / "alerter")})
    try:
        offset = await stack.spawn()
        code = await stack.wait_exit(180)
        output = stack.output(offset)
        assert code == 1, output[-3000:]
        assert "alerter died (failed to start" in output, output[-3000:]
        assert stack.leftovers() == []
    finally:
        stack.force_down()


async def test_down_stops_a_hung_stack_process_and_its_infra():
    stack = ChaosStack(DATA_DIR / "hung-stack")
    try:
        await stack.start()
        assert stack.proc is not None
        stack.proc.send_signal(signal.SIGSTOP)  # hung: it will never act on SIGTERM
        started = time.monotonic()
        down = await asyncio.create_subprocess_exec(
            str(BIN / "trulayer-local"),
            "down",
            cwd=REPO,
            env=stack.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(down.communicate(), 60)
        print(f"\nmake down took {time.monotonic() - started:.1f}s for a hung stack:\n{out.decode()}")
        assert down.returncode == 0
        assert "did not stop: SIGKILL" in out.decode()
        assert await stack.wait_exit(10) == -signal.SIGKILL
        assert stack.leftovers() == []
    finally:
        stack.force_down()


def test_a_held_chdb_directory_is_explained_and_a_stale_lock_cleared(tmp_path: Path):
    path = tmp_path / "chdb"
    path.mkdir()
    status = path / "status"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(status)!r}, os.O_RDWR | os.O_CREAT)\n"
            "os.write(fd, f'PID: {os.getpid()}\\n'.encode())\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        with pytest.raises(ChdbLockedError, match=rf"(?s)in use by pid {holder.pid} .*make down"):
            check_chdb_lock(path)
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    # Its owner is gone: the lock went with it, the stale status file is cleared.
    assert status.exists()
    check_chdb_lock(path)
    assert not status.exists()
