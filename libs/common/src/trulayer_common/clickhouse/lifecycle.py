"""A service's ClickHouse client for its lifetime: the injected one, or its own, migrated at
start and closed at exit. Separate from ``client`` (the factory) and ``migrations`` (which
use the client), so that neither imports the other's user."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from trulayer_common.clickhouse.client import ClickHouse, ReadPolicy, create_clickhouse
from trulayer_common.clickhouse.migrations import apply_migrations


@contextlib.asynccontextmanager
async def clickhouse_for(
    url: str, database: str, shared: ClickHouse | None = None, policy: ReadPolicy | None = None
) -> AsyncIterator[ClickHouse]:
    """The client a service uses: ``shared`` when one is injected (the local stack's one chDB,
    migrated and closed by its owner), else its own with the read ``policy``, migrated at start
    and closed at exit."""
    if shared is not None:
        yield shared
        return
    ch = create_clickhouse(url, database, policy)
    try:
        await apply_migrations(ch)
        yield ch
    finally:
        ch.close()
