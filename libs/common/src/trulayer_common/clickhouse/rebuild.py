"""Changing what ``ALTER TABLE`` cannot (partition key, sorting key, column types) without losing rows.

A migration statement ``REBUILD TABLE {db}.<table> AS CREATE TABLE {db}.<table> (...)`` (see
:mod:`trulayer_common.clickhouse.migrations`) runs :func:`rebuild_table`:

1. if the table already has the new definition (compared as the server prints both), only the
   leftovers of an interrupted rebuild are finished: re-running is harmless;
2. otherwise the new table is created as ``<table>__new`` (a leftover partial copy is dropped
   first: the old table still holds everything), the old table's newest block number is noted
   (in ``schema_rebuilds``), every row is copied by column name (types convert: ``UInt32``
   becomes ``UInt64``) and the counts compared as readers see them (``FINAL`` for the
   replacing engines, whose merges may collapse duplicates meanwhile);
3. ``EXCHANGE TABLES`` swaps the two names atomically: readers see the old or the new table,
   never neither;
4. rows that writers still running during the upgrade added to the old table after the copy
   (the parts with block numbers past the noted one) are copied too; a part merged across the
   mark is copied whole, which only duplicates rows the replacing engines collapse;
5. the old table is dropped.

An insert in flight at the very instant of the swap can still land in the old table after
step 4: stop the writers (ingest-worker) during an upgrade, as the deployment's set-up job does.
"""

from __future__ import annotations

import re

from trulayer_common.clickhouse.client import ClickHouse
from trulayer_common.logging import get_logger

log = get_logger(__name__)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class RebuildError(RuntimeError):
    """The copy does not match: nothing was swapped."""


async def _create_query(ch: ClickHouse, table: str) -> str | None:
    rows = await ch.query(
        "SELECT create_table_query AS q FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        {"db": ch.database, "t": table},
        max_seconds=None,
    )
    return str(rows[0]["q"]) if rows else None


def _canonical(query: str, table: str, db: str) -> str:
    """A table's definition with its own name taken out (so two names compare equal)."""
    return query.replace(f"{db}.{table} ", f"{db}.<table> ", 1)


async def _shared_columns(ch: ClickHouse, target: str, source: str) -> str:
    rows = await ch.query(
        "SELECT table, name FROM system.columns WHERE database = {db:String} AND table IN ({t:String}, {s:String}) "
        "ORDER BY position",
        {"db": ch.database, "t": target, "s": source},
        max_seconds=None,
    )
    in_source = {r["name"] for r in rows if r["table"] == source}
    return ", ".join(f"`{r['name']}`" for r in rows if r["table"] == target and r["name"] in in_source)


async def _count(ch: ClickHouse, table: str) -> int:
    engine = await ch.query(
        "SELECT engine FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        {"db": ch.database, "t": table},
        max_seconds=None,
    )
    final = " FINAL" if engine and "Replacing" in str(engine[0]["engine"]) else ""
    rows = await ch.query(f"SELECT count() AS n FROM {ch.database}.{table}{final}", max_seconds=None)
    return int(rows[0]["n"])


async def _newest_block(ch: ClickHouse, table: str) -> int:
    rows = await ch.query(
        "SELECT max(max_block_number) AS b FROM system.parts WHERE database = {db:String} AND table = {t:String} "
        "AND active",
        {"db": ch.database, "t": table},
        max_seconds=None,
    )
    return int(rows[0]["b"] or 0) if rows else 0


async def _note_mark(ch: ClickHouse, table: str, mark: int | None) -> int | None:
    """Keep (``mark`` given) or read back the old table's newest block number at copy time."""
    db = ch.database
    await ch.command(
        f"CREATE TABLE IF NOT EXISTS {db}.schema_rebuilds (table String, mark UInt64, at DateTime DEFAULT now()) "
        "ENGINE = ReplacingMergeTree(at) ORDER BY table"
    )
    if mark is not None:
        await ch.command(
            f"INSERT INTO {db}.schema_rebuilds (table, mark) VALUES ({{t:String}}, {{m:UInt64}})",
            {"t": table, "m": mark},
        )
        return mark
    rows = await ch.query(
        f"SELECT mark FROM {db}.schema_rebuilds FINAL WHERE table = {{t:String}}", {"t": table}, max_seconds=None
    )
    return int(rows[0]["mark"]) if rows else None


async def rebuild_table(ch: ClickHouse, table: str, create_sql: str) -> bool:
    """Bring ``table`` to the definition ``create_sql`` (which names ``{db}.<table>``) keeping
    every row; returns whether rows were copied. Idempotent, also after an interruption."""
    if not _IDENT.match(table):
        raise ValueError(f"not an identifier: {table!r}")
    db = ch.database
    new, probe = f"{table}__new", f"{table}__probe"

    def create(name: str) -> str:
        return create_sql.replace(f"{{db}}.{table}", f"{db}.{name}", 1).replace("{db}", db)

    current = await _create_query(ch, table)
    if current is None:
        await ch.command(create(table).replace("CREATE TABLE ", "CREATE TABLE IF NOT EXISTS ", 1))
        return False
    await ch.command(f"DROP TABLE IF EXISTS {db}.{probe}")
    await ch.command(create(probe))
    wanted = await _create_query(ch, probe)
    await ch.command(f"DROP TABLE IF EXISTS {db}.{probe}")
    assert wanted is not None
    if _canonical(current, table, db) == _canonical(wanted, probe, db):
        # Already rebuilt. A leftover "__new" is the old table of an interrupted swap.
        if await _create_query(ch, new) is not None:
            await _copy_stragglers(ch, new, table, await _note_mark(ch, table, None))
            await ch.command(f"DROP TABLE IF EXISTS {db}.{new}")
        return False

    await ch.command(f"DROP TABLE IF EXISTS {db}.{new}")  # a partial copy of an interrupted rebuild
    await ch.command(create(new))
    columns = await _shared_columns(ch, new, table)
    mark = await _note_mark(ch, table, await _newest_block(ch, table))
    before = await _count(ch, table)
    await ch.command(f"INSERT INTO {db}.{new} ({columns}) SELECT {columns} FROM {db}.{table}")
    copied = await _count(ch, new)
    if copied < before:
        raise RebuildError(f"rebuild of {table}: copied {copied} of {before} rows; nothing swapped")
    await ch.command(f"EXCHANGE TABLES {db}.{table} AND {db}.{new}")
    await _copy_stragglers(ch, new, table, mark)
    await ch.command(f"DROP TABLE {db}.{new}")
    log.info("table_rebuilt", table=table, rows=copied)
    return True


async def _copy_stragglers(ch: ClickHouse, old: str, target: str, mark: int | None) -> None:
    """The rows of ``old`` in parts written after the copy (block numbers past ``mark``; all of
    them when the mark was lost)."""
    db = ch.database
    columns = await _shared_columns(ch, target, old)
    parts = await ch.query(
        "SELECT name FROM system.parts WHERE database = {db:String} AND table = {t:String} AND active "
        "AND max_block_number > {m:UInt64}",
        {"db": db, "t": old, "m": mark or 0},
        max_seconds=None,
    )
    if not parts:
        return
    await ch.command(
        f"INSERT INTO {db}.{target} ({columns}) SELECT {columns} FROM {db}.{old} WHERE _part IN {{p:Array(String)}}",
        {"p": [p["name"] for p in parts]},
    )
    log.warning("table_rebuild_stragglers_copied", table=target, parts=len(parts))
