"""Numbered SQL migrations (``migrations/NNNN_name.sql``), applied once each, in order, at start.

Applied versions are recorded in ``schema_migrations``; every statement is also written to be
idempotent (``IF NOT EXISTS``), so two services starting at once cannot break each other.

Besides plain SQL, a statement ``REBUILD TABLE {db}.<t> AS CREATE TABLE {db}.<t> ...``
changes what ``ALTER`` cannot (partition or sorting key, column types) while keeping every row:
create new, copy, swap, drop (:mod:`trulayer_common.clickhouse.rebuild`; idempotent too). And
``REFILL VIEW {db}.<view>`` fills a materialized view's table from the rows already stored
(:mod:`trulayer_common.clickhouse.refill`; idempotent: it empties the table first).
"""

from __future__ import annotations

import re
from importlib import resources

from trulayer_common.clickhouse.client import ClickHouse
from trulayer_common.clickhouse.rebuild import rebuild_table
from trulayer_common.clickhouse.refill import refill_view
from trulayer_common.logging import get_logger

log = get_logger(__name__)
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_REBUILD = re.compile(r"^REBUILD TABLE \{db\}\.(?P<table>\w+) AS\s+(?P<create>CREATE TABLE .+)$", re.DOTALL)
_REFILL = re.compile(r"^REFILL VIEW \{db\}\.(?P<view>\w+)$")


def load_migrations() -> list[tuple[int, str, list[str]]]:
    """(version, name, statements) for every migration file, in version order."""
    found = []
    for entry in resources.files("trulayer_common.clickhouse").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if not match:
            continue
        text = entry.read_text(encoding="utf-8")
        text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
        statements = [s.strip() for s in text.split(";") if s.strip()]
        found.append((int(match.group(1)), match.group(2), statements))
    found.sort()
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration numbers: {versions}")
    return found


async def apply_migrations(ch: ClickHouse) -> list[int]:
    """Create the database and apply the migrations not applied yet; returns their versions."""
    db = ch.database
    await ch.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    await ch.command(
        f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations "
        "(version UInt32, name String, applied_at DateTime DEFAULT now()) "
        "ENGINE = ReplacingMergeTree ORDER BY version"
    )
    rows = await ch.query(f"SELECT version FROM {db}.schema_migrations FINAL", max_seconds=None)
    done = {int(r["version"]) for r in rows}
    applied = []
    for version, name, statements in load_migrations():
        if version in done:
            continue
        for statement in statements:
            await run_statement(ch, statement)
        await ch.command(f"INSERT INTO {db}.schema_migrations (version, name) VALUES ({version}, '{name}')")
        log.info("migration_applied", version=version, name=name)
        applied.append(version)
    return applied


async def run_statement(ch: ClickHouse, statement: str) -> None:
    """One migration statement: SQL (``{db}`` replaced), a ``REBUILD TABLE`` or a ``REFILL VIEW``."""
    if (rebuild := _REBUILD.match(statement)) is not None:
        await rebuild_table(ch, rebuild["table"], rebuild["create"])
    elif (refill := _REFILL.match(statement)) is not None:
        await refill_view(ch, refill["view"])
    else:
        await ch.command(statement.replace("{db}", ch.database))
