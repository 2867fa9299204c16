"""ClickHouse access: one client factory over two transports, and numbered migrations."""

from trulayer_common.clickhouse.client import ClickHouse, create_clickhouse
from trulayer_common.clickhouse.lifecycle import clickhouse_for
from trulayer_common.clickhouse.migrations import apply_migrations

__all__ = ["ClickHouse", "apply_migrations", "clickhouse_for", "create_clickhouse"]
