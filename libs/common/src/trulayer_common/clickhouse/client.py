"""The ClickHouse client factory: ``chdb:///path`` (embedded) or ``http(s)://host:8123``.

Both go through clickhouse-connect, so queries and inserts follow one code path. The driver is
synchronous; :class:`ClickHouse` runs calls on threads so the event loop keeps serving (chDB
and the HTTP driver release the GIL while the engine works), in two lanes that never wait for
each other:

* the **write lane** (inserts, DDL, :meth:`ClickHouse.command`): its own connection and thread
  (embedded: one, as one engine per process keeps writes ordered; HTTP: a few);
* the **read lane** (:meth:`ClickHouse.query`): a pool of ``ReadPolicy.concurrency``
  connections (embedded: that many chDB connections to the same path, which run in parallel;
  HTTP: a pool of that many HTTP connections) with a bounded queue in front, where lookups by
  key (``quick``) go before scans and have one more connection of their own. A read that finds
  the pool busy and the queue full raises :class:`ReadCapacityError` at once (the HTTP edge
  answers 503 with ``Retry-After``) instead of piling up; every read runs with
  ``max_execution_time`` (:class:`ReadTimeoutError` past it) and, by default, at a lower CPU
  priority than the writer, so dashboards cannot starve ingest.

So an insert never waits behind a dashboard's read, and a burst of reads cannot queue without
bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import urlparse

import clickhouse_connect
import orjson
from clickhouse_connect.driver import httputil
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError
from prometheus_client import Counter, Gauge

from trulayer_common.clickhouse.embedded_lock import check_chdb_lock

_INSERT_SETTINGS = {"input_format_skip_unknown_fields": 1, "date_time_input_format": "best_effort"}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TIMEOUT_CODES = ("Code: 159.", "TIMEOUT_EXCEEDED")
T = TypeVar("T")

# Reader connections beyond CLICKHOUSE_READ_CONCURRENCY that serve only lookups by key.
QUICK_RESERVED = 1
READS_REFUSED = Counter("trulayer_clickhouse_reads_refused_total", "reads refused: pool and queue full")
READS_TIMED_OUT = Counter("trulayer_clickhouse_reads_timed_out_total", "reads stopped at max_execution_time")
READS_HELD = Counter("trulayer_clickhouse_reads_held_total", "scans held back by the read budget while writing")
READS_ADMITTED = Gauge("trulayer_clickhouse_reads_admitted", "reads running or queued")


class _Default:
    """The policy's read time limit (a sentinel distinct from ``None``, no limit)."""


DEFAULT: Final = _Default()


class ReadCapacityError(RuntimeError):
    """Every reader is busy and the queue is full: retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("ClickHouse readers are busy and their queue is full")
        self.retry_after = retry_after


class ReadTimeoutError(RuntimeError):
    """The read ran past its time limit and was stopped."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the query ran longer than {seconds:g} s and was stopped")
        self.seconds = seconds


def _check_identifier(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"not a plain identifier: {name!r}")
    return name


@dataclass(frozen=True)
class ReadPolicy:
    """How reads are bounded (``CLICKHOUSE_READ_*`` settings)."""

    concurrency: int = 4
    queue: int = 64
    max_seconds: float = 10.0
    # Threads per read (0: the engine's default, one per core).
    max_threads: int = 0
    # Nice value of the engine's threads running a read (0..19): the writer keeps the CPU.
    nice: int = 10
    # Share of the readers' time scans may use when sustained while writing (1: all; _ReadBudget),
    # and the engine time they may use at once before it applies.
    duty_cycle: float = 1.0
    burst_seconds: float = 2.0
    retry_after_seconds: int = 1

    def settings(self, max_seconds: float | None) -> dict[str, Any]:
        out: dict[str, Any] = {"max_execution_time": max_seconds or 0}
        if self.max_threads:
            out["max_threads"] = self.max_threads
        if self.nice:
            out["os_threads_nice_value_query"] = self.nice
        return out


class _Readers:
    """Idle reader slots (indexes into the reader connections). Quick reads (lookups by key) are
    served first, and the last ``reserved`` slots serve only them: a trace detail never waits
    behind a queue of dashboard aggregations, nor behind the one running."""

    def __init__(self, slots: int, reserved: int) -> None:
        self._first_reserved = slots - reserved
        self._idle = list(range(self._first_reserved))
        self._idle_reserved = list(range(self._first_reserved, slots))
        self._waiting: tuple[deque[asyncio.Future[int]], deque[asyncio.Future[int]]] = (deque(), deque())

    async def acquire(self, quick: bool) -> int:
        if self._idle:
            return self._idle.pop()
        if quick and self._idle_reserved:
            return self._idle_reserved.pop()
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting[0 if quick else 1].append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(waiter.result())  # handed over just as the caller gave up
            raise

    def release(self, slot: int) -> None:
        reserved = slot >= self._first_reserved
        for queue in self._waiting[:1] if reserved else self._waiting:
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(slot)
                    return
        (self._idle_reserved if reserved else self._idle).append(slot)


class _ReadBudget:
    """Engine time scans may use while the writer is busy: a bucket of ``burst`` seconds refilled
    at ``rate`` seconds per second (a token bucket of read time). A scan starts once the bucket is
    not empty and takes what it used when it ends, so occasional reads never wait, and a
    sustained stream of them uses ``rate`` cores' worth at most (``CLICKHOUSE_READ_DUTY_CYCLE`` ×
    the concurrency). While nothing is written, reads are not held back (nothing to protect)."""

    def __init__(self, rate: float, burst: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._at = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now

    async def wait(self, writing: Callable[[], bool]) -> None:
        self._refill()
        if self._tokens < 0 and writing():
            READS_HELD.inc()
        while self._tokens < 0 and writing():
            await asyncio.sleep(-self._tokens / self._rate)
            self._refill()

    def spend(self, seconds: float) -> None:
        self._refill()
        self._tokens -= seconds


class ClickHouse:
    """Async façade over clickhouse-connect clients, bound to one database: a write lane and a
    bounded read pool (module docstring)."""

    def __init__(
        self,
        writer: Client,
        readers: Sequence[Client],
        database: str,
        *,
        embedded: bool,
        policy: ReadPolicy | None = None,
    ) -> None:
        self._writer = writer
        self._readers = list(readers)
        self.database = _check_identifier(database)
        self.embedded = embedded
        self.policy = policy or ReadPolicy()
        self._write_pool = ThreadPoolExecutor(max_workers=1 if embedded else 4, thread_name_prefix="ch-write")
        self._read_pool = ThreadPoolExecutor(
            max_workers=len(self._readers), thread_name_prefix="ch-read", initializer=self._lower_priority
        )
        # Connections beyond the policy's concurrency serve only lookups by key (_Readers).
        self._slots = _Readers(len(self._readers), max(0, len(self._readers) - self.policy.concurrency))
        self._budget = _ReadBudget(self.policy.duty_cycle * self.policy.concurrency, self.policy.burst_seconds)
        self._wrote_at = float("-inf")
        self._admitted = 0

    def _lower_priority(self) -> None:
        """A reader thread runs at the policy's nice value too: decoding answers holds the GIL and
        a core, and the writer's thread (and the event loop) come first."""
        if self.policy.nice:
            with contextlib.suppress(OSError, AttributeError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.policy.nice)

    async def _write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        self._wrote_at = time.monotonic()
        try:
            return await self._on_write_lane(fn, *args, **kwargs)
        finally:
            self._wrote_at = time.monotonic()

    async def _on_write_lane(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._write_pool, functools.partial(fn, *args, **kwargs))

    def _admit(self, change: int) -> None:
        """Reads running or queued go up or down by ``change`` (the gauge follows)."""
        self._admitted += change
        READS_ADMITTED.set(self._admitted)

    def _writing(self) -> bool:
        """Whether the writer worked in the last second (ingest is running)."""
        return time.monotonic() - self._wrote_at < 1.0

    async def _read(self, call: Callable[[Client], T], max_seconds: float | None, quick: bool) -> T:
        """Run ``call`` on an idle reader: queued when all are busy (quick reads first), refused
        when the queue is full. The slot is held until the engine call returns, even if the caller
        gave up meanwhile. Scans are admitted up to the concurrency plus the queue; lookups by key
        also to the reserved readers."""
        limit = (len(self._readers) if quick else self.policy.concurrency) + self.policy.queue
        if self._admitted >= limit:
            READS_REFUSED.inc()
            raise ReadCapacityError(self.policy.retry_after_seconds)
        self._admit(1)
        slots = self._slots
        try:
            slot = await slots.acquire(quick)
        except BaseException:
            self._admit(-1)
            raise
        if not quick and self.policy.duty_cycle < 1:
            try:
                await self._budget.wait(self._writing)  # holding the reader: the scans behind wait too
            except BaseException:
                slots.release(slot)
                self._admit(-1)
                raise
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        future = loop.run_in_executor(self._read_pool, call, self._readers[slot])

        def release(_: object) -> None:
            if not quick and self.policy.duty_cycle < 1:
                self._budget.spend(time.monotonic() - started)
            slots.release(slot)
            self._admit(-1)

        future.add_done_callback(release)
        try:
            return await asyncio.shield(future)
        except DatabaseError as exc:
            if max_seconds and any(code in str(exc) for code in _TIMEOUT_CODES):
                READS_TIMED_OUT.inc()
                raise ReadTimeoutError(max_seconds) from None
            raise

    def _limit(self, max_seconds: float | _Default | None) -> float | None:
        return self.policy.max_seconds if isinstance(max_seconds, _Default) else max_seconds

    async def command(
        self, sql: str, parameters: dict[str, Any] | None = None, *, settings: dict[str, Any] | None = None
    ) -> Any:
        """A statement on the write lane (DDL, ``INSERT … SELECT``, mutations); no time limit."""
        return await self._write(self._writer.command, sql, parameters=parameters, settings=settings)

    async def query(
        self,
        sql: str,
        parameters: dict[str, Any] | None = None,
        *,
        settings: dict[str, Any] | None = None,
        max_seconds: float | _Default | None = DEFAULT,
        quick: bool = False,
    ) -> list[dict[str, Any]]:
        """Run a SELECT on the read lane with server-side bound parameters; rows as dicts.

        ``max_seconds``: the policy's limit by default, ``None`` for none (migrations). ``quick``:
        a lookup by key (milliseconds), served before queued scans. Raises
        :class:`ReadCapacityError` when the pool and its queue are full, :class:`ReadTimeoutError`
        past the limit."""
        limit = self._limit(max_seconds)
        merged = {**self.policy.settings(limit), **(settings or {})}

        def call(client: Client) -> list[dict[str, Any]]:
            result = client.query(sql, parameters=parameters, settings=merged)
            names = result.column_names
            return [dict(zip(names, row, strict=True)) for row in result.result_rows]

        return await self._read(call, limit, quick)

    async def insert_json_rows(
        self, table: str, rows: Sequence[dict[str, Any]], settings: dict[str, Any] | None = None
    ) -> None:
        """Insert rows as one JSON array in JSONEachRow: a single orjson call, parsed by the engine.

        Datetimes may be ISO 8601 text with an offset (``best_effort`` parsing); ``settings``
        adds to (or overrides) those of the insert.
        """
        if not rows:
            return
        await self._write(
            self._writer.raw_insert,
            f"{self.database}.{_check_identifier(table)}",
            None,
            orjson.dumps(rows),
            settings={**_INSERT_SETTINGS, **(settings or {})},
            fmt="JSONEachRow",
        )

    async def ping(self) -> bool:
        """Whether the engine answers (on the write lane: a full read pool is not an outage)."""
        try:
            # Not counted as writing: a probe must not hold back reads (_ReadBudget).
            return bool(await self._on_write_lane(self._writer.command, "SELECT 1"))
        except Exception:
            return False

    def close(self) -> None:
        self._write_pool.shutdown(wait=True)
        self._read_pool.shutdown(wait=True)
        for client in {id(c): c for c in (self._writer, *self._readers)}.values():
            client.close()


def create_clickhouse(url: str, database: str, policy: ReadPolicy | None = None) -> ClickHouse:
    """Build the client from ``CLICKHOUSE_URL``. Relative chdb paths resolve from the cwd."""
    policy = policy or ReadPolicy()
    parsed = urlparse(url)
    if parsed.scheme == "chdb":
        # chdb:///abs/path → "/abs/path"; chdb://./rel/path → "./rel/path" (from the cwd)
        path = Path(parsed.netloc + parsed.path)
        path.mkdir(parents=True, exist_ok=True)
        check_chdb_lock(path.resolve())
        dsn = f"chdb://{path.resolve()}"
        # Each chDB client is its own connection to the one engine: they run in parallel.
        writer = clickhouse_connect.get_client(dsn=dsn)
        readers = [clickhouse_connect.get_client(dsn=dsn) for _ in range(policy.concurrency + QUICK_RESERVED)]
        return ClickHouse(writer, readers, database, embedded=True, policy=policy)
    if parsed.scheme in ("http", "https"):
        writer = clickhouse_connect.get_client(
            dsn=url, pool_mgr=httputil.get_pool_manager(maxsize=4), autogenerate_session_id=False
        )
        # One client, no session id (sessions serialise), over a pool of HTTP connections: the
        # read threads share it.
        size = policy.concurrency + QUICK_RESERVED
        reader = clickhouse_connect.get_client(
            dsn=url, pool_mgr=httputil.get_pool_manager(maxsize=size), autogenerate_session_id=False
        )
        return ClickHouse(writer, [reader] * size, database, embedded=False, policy=policy)
    raise ValueError(f"CLICKHOUSE_URL must start with chdb:// or http(s)://, got {url!r}")
