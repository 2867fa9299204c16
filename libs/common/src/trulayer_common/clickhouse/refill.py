"""Filling a materialized view's table from the rows already stored (a rollup added to a table
that holds data, or a rollup to recompute).

A migration statement ``REFILL VIEW {db}.<view>`` (see :mod:`trulayer_common.clickhouse.migrations`)
runs :func:`refill_view`:

1. the view's target table is emptied, and so are the targets of the views fed by that target
   (a minute rollup feeding an hour rollup: refilling the minute one refills both);
2. the view's own ``SELECT`` runs over its source table with ``FINAL`` (each stored row once,
   whatever redeliveries wrote) and its result is inserted into the target, which feeds the
   views downstream as any insert does.

Idempotent: run again, it empties and fills again. Rows the writers insert meanwhile reach the
target twice (through the view, and through the fill when their part is read): stop the writers
during an upgrade, as for ``REBUILD TABLE`` (the set-up job runs before them).
"""

from __future__ import annotations

import re

from trulayer_common.clickhouse.client import ClickHouse
from trulayer_common.logging import get_logger

log = get_logger(__name__)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TARGET = re.compile(r"\bTO\s+`?(?P<db>\w+)`?\.`?(?P<table>\w+)`?")
_SOURCE = re.compile(r"\bFROM\s+`?(?P<db>\w+)`?\.`?(?P<table>\w+)`?(?=\s)")
# A fill is one INSERT … SELECT over the whole source: aggregate in bounded memory.
# History may span more partitions than one writer's insert ever does.
_FILL_SETTINGS = {
    "max_bytes_before_external_group_by": 1 << 30,
    "max_execution_time": 0,
    "max_partitions_per_insert_block": 0,
}


class RefillError(RuntimeError):
    """The view is not one this module can refill."""


async def _view(ch: ClickHouse, view: str) -> tuple[str, str, str]:
    """(target table, source table, SELECT) of a materialized view of this database."""
    rows = await ch.query(
        "SELECT create_table_query AS q, as_select AS s FROM system.tables "
        "WHERE database = {db:String} AND name = {v:String} AND engine = 'MaterializedView'",
        {"db": ch.database, "v": view},
        max_seconds=None,
    )
    if not rows:
        raise RefillError(f"no materialized view {ch.database}.{view}")
    target, source = _TARGET.search(rows[0]["q"]), _SOURCE.search(rows[0]["s"])
    if target is None or source is None or {target["db"], source["db"]} != {ch.database}:
        raise RefillError(f"{view}: not a view 'TO {ch.database}.<table>' over a table of {ch.database}")
    return target["table"], source["table"], str(rows[0]["s"])


async def _downstream_targets(ch: ClickHouse, table: str) -> list[str]:
    """Targets of the views fed by ``table``, recursively."""
    rows = await ch.query(
        "SELECT dependencies_table AS views FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        {"db": ch.database, "t": table},
        max_seconds=None,
    )
    found: list[str] = []
    for view in rows[0]["views"] if rows else []:
        target, _, _ = await _view(ch, view)
        found += [target, *await _downstream_targets(ch, target)]
    return found


async def refill_view(ch: ClickHouse, view: str) -> None:
    """Empty the target of ``view`` (and of the views it feeds), then fill it from the stored rows."""
    if not _IDENT.match(view):
        raise ValueError(f"not an identifier: {view!r}")
    db = ch.database
    target, source, select = await _view(ch, view)
    for table in (target, *await _downstream_targets(ch, target)):
        await ch.command(f"TRUNCATE TABLE {db}.{table}")
    read = f"FROM {db}.{source} "
    if read not in select:
        raise RefillError(f"{view}: its SELECT does not read '{db}.{source}' as expected")
    final_select = select.replace(read, f"FROM {db}.{source} FINAL ", 1)
    await ch.command(f"INSERT INTO {db}.{target} {final_select}", settings=_FILL_SETTINGS)
    log.info("view_refilled", view=view, target=target, source=source)
