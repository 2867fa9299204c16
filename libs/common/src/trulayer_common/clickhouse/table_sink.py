"""The ClickHouse end of a consumer loop: items are rows per table, written one insert per table.

A transform turns one record into :data:`TableRows` (``table → rows``; a writer of one table
returns ``{"feedback": [row]}``); :class:`TableSink` merges a batch of them and inserts each
table's rows as one JSONEachRow insert. Storage is keyed by ids (ReplacingMergeTree), so
writing a batch again after a failure or a redelivery is harmless.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client import Counter

from trulayer_common.clickhouse.client import ClickHouse
from trulayer_common.clickhouse.refusals import is_data_error

TableRows = dict[str, list[dict[str, Any]]]
ROWS_WRITTEN = Counter("trulayer_ingest_rows_written_total", "rows inserted into ClickHouse", ["table"])


class TableSink:
    """Writes :data:`TableRows` items (the ``Sink`` of ``trulayer_common.consumer``).

    ``counted_table`` names the table whose rows count toward the batch size (the trace writer
    counts traces, not their spans); without it every row counts. With ``rows_per_unit`` too,
    an item counts at least its total rows divided by it: a batch then never holds more than
    ``rows_per_unit`` × the batch size rows, however many spans and events a trace carries
    (memory), while ordinary traces still count one each. ``insert_settings`` are the engine
    settings the transform relies on. ``written_last`` names the table inserted after the others:
    readers run beside the writer, so the row that makes a record visible (a trace) is written
    once its parts (spans, events) are there.
    """

    name = "ClickHouse"

    def __init__(
        self,
        clickhouse: ClickHouse,
        *,
        counted_table: str | None = None,
        rows_per_unit: int | None = None,
        insert_settings: Mapping[str, Any] | None = None,
        written_last: str | None = None,
    ) -> None:
        self._clickhouse = clickhouse
        self._counted = counted_table
        self._rows_per_unit = rows_per_unit
        self._settings = dict(insert_settings or {})
        self._last = written_last

    def size(self, item: TableRows) -> int:
        if self._counted is None:
            return sum(len(rows) for rows in item.values())
        counted = len(item.get(self._counted, ()))
        if self._rows_per_unit is None:
            return counted
        return max(counted, sum(len(rows) for rows in item.values()) // self._rows_per_unit)

    async def write(self, items: Sequence[TableRows]) -> None:
        merged: TableRows = {}
        for item in items:
            for table, rows in item.items():
                if rows:
                    merged.setdefault(table, []).extend(rows)
        if self._last is not None and self._last in merged:
            merged[self._last] = merged.pop(self._last)  # re-inserted: now the last key
        for table, rows in merged.items():
            await self._clickhouse.insert_json_rows(table, rows, self._settings)
            ROWS_WRITTEN.labels(table).inc(len(rows))

    async def available(self) -> bool:
        return await self._clickhouse.ping()

    def refuses_record(self, error: Exception) -> bool:
        return is_data_error(error)
