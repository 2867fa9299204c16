"""The trace writer's sink with the live tail: write the batch, then announce what was stored.

Wraps the :class:`~trulayer_common.clickhouse.table_sink.TableSink` of the trace writer (a
``Sink`` of the consumer loop): once a batch is written (traces last), the stored trace rows
go to :class:`~trulayer_common.live.LivePublisher`, which publishes frames for the tenants that
have live clients. Publishing never fails the write. A batch written again after a crash is
announced again (a live client may see a trace twice then).
"""

from __future__ import annotations

from collections.abc import Sequence

from trulayer_common.clickhouse.table_sink import TableRows, TableSink
from trulayer_common.live import LivePublisher


class LiveSink:
    name = "ClickHouse"

    def __init__(self, inner: TableSink, publisher: LivePublisher) -> None:
        self._inner = inner
        self._publisher = publisher

    def size(self, item: TableRows) -> int:
        return self._inner.size(item)

    async def write(self, items: Sequence[TableRows]) -> None:
        await self._inner.write(items)
        await self._publisher.publish(row for item in items for row in item.get("traces", ()))

    async def available(self) -> bool:
        return await self._inner.available()
