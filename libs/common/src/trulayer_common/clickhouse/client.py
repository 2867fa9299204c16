"""The ClickHouse client factory: ``chdb:///path`` (embedded) or ``http(s)://host:8123``.

Both go through clickhouse-connect, so queries and inserts follow one code path. The driver
is synchronous; :class:`ClickHouse` runs calls on a small thread pool so the event loop keeps
serving (chDB and the HTTP driver release the GIL while the engine works). Embedded chDB gets
one thread: it is one engine in this process and serialising calls keeps it safe.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import clickhouse_connect
import orjson
from clickhouse_connect.driver.client import Client

from trulayer_common.clickhouse.embedded_lock import check_chdb_lock

_INSERT_SETTINGS = {"input_format_skip_unknown_fields": 1, "date_time_input_format": "best_effort"}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_identifier(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"not a plain identifier: {name!r}")
    return name


class ClickHouse:
    """Async façade over a clickhouse-connect client, bound to one database."""

    def __init__(self, client: Client, database: str, *, embedded: bool) -> None:
        self._client = client
        self.database = _check_identifier(database)
        self.embedded = embedded
        self._pool = ThreadPoolExecutor(max_workers=1 if embedded else 8, thread_name_prefix="clickhouse")

    async def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    async def command(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        return await self._run(self._client.command, sql, parameters=parameters)

    async def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a SELECT with server-side bound parameters; rows as dicts."""
        result = await self._run(self._client.query, sql, parameters=parameters)
        names = result.column_names
        return [dict(zip(names, row, strict=True)) for row in result.result_rows]

    async def insert_json_rows(
        self, table: str, rows: Sequence[dict[str, Any]], settings: dict[str, Any] | None = None
    ) -> None:
        """Insert rows as one JSON array in JSONEachRow: a single orjson call, parsed by the engine.

        Datetimes may be ISO 8601 text with an offset (``best_effort`` parsing); ``settings``
        adds to (or overrides) those of the insert.
        """
        if not rows:
            return
        await self._run(
            self._client.raw_insert,
            f"{self.database}.{_check_identifier(table)}",
            None,
            orjson.dumps(rows),
            settings={**_INSERT_SETTINGS, **(settings or {})},
            fmt="JSONEachRow",
        )

    async def ping(self) -> bool:
        try:
            return bool(await self._run(self._client.command, "SELECT 1"))
        except Exception:
            return False

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()


def create_clickhouse(url: str, database: str) -> ClickHouse:
    """Build the client from ``CLICKHOUSE_URL``. Relative chdb paths resolve from the cwd."""
    parsed = urlparse(url)
    if parsed.scheme == "chdb":
        # chdb:///abs/path → "/abs/path"; chdb://./rel/path → "./rel/path" (from the cwd)
        path = Path(parsed.netloc + parsed.path)
        path.mkdir(parents=True, exist_ok=True)
        check_chdb_lock(path.resolve())
        client = clickhouse_connect.get_client(dsn=f"chdb://{path.resolve()}")
        return ClickHouse(client, database, embedded=True)
    if parsed.scheme in ("http", "https"):
        client = clickhouse_connect.get_client(dsn=url)
        return ClickHouse(client, database, embedded=False)
    raise ValueError(f"CLICKHOUSE_URL must start with chdb:// or http(s)://, got {url!r}")
