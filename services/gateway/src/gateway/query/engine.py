"""Runs a checked query: plan (rollups or raw), one statement on the read pool, data points.

``partials`` is the seam for callers that regroup (``GET /v1/metrics``); ``run`` answers
``POST /v1/metrics/query``. The declared metadata keys of the metadata rollup are read from
``metadata_rollup_keys`` and cached for a minute (a key declared meanwhile is used once the
cache refreshes; until then its queries are read raw, which gives the same answer).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.query import plan as planning
from gateway.query.partials import GroupKey, Partial, data_points, merge, normalise_key, subtract
from gateway.query.request import Query, QueryError
from gateway.query.sql import MAX_ROWS, Columns, QuerySql
from trulayer_common.clickhouse import ClickHouse
from trulayer_common.logging import get_logger

log = get_logger(__name__)
MAX_GROUPS = 1_000
KEYS_TTL_SECONDS = 60.0


class MetadataKeys:
    """The declared metadata keys and when each was declared, cached."""

    def __init__(self, clickhouse: ClickHouse) -> None:
        self._clickhouse = clickhouse
        self._keys: dict[str, datetime] = {}
        self._read_at = -KEYS_TTL_SECONDS

    async def current(self) -> dict[str, datetime]:
        if time.monotonic() - self._read_at >= KEYS_TTL_SECONDS:
            ch = self._clickhouse
            rows = await ch.query(
                f"SELECT meta_key, min(since) AS since FROM {ch.database}.metadata_rollup_keys GROUP BY meta_key"
            )
            self._keys = {r["meta_key"]: _utc(r["since"]) for r in rows}
            self._read_at = time.monotonic()
        return self._keys


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Partials:
    columns: Columns
    parts: Mapping[tuple[int, GroupKey], Partial]
    plan: planning.Plan


class QueryEngine:
    def __init__(self, clickhouse: ClickHouse, metadata_keys: MetadataKeys) -> None:
        self._clickhouse = clickhouse
        self._metadata_keys = metadata_keys

    async def partials(self, query: Query, tenant_id: str) -> Partials:
        keys = await self._metadata_keys.current() if query.metadata_keys else {}
        chosen = planning.choose(query, keys)
        statement = QuerySql(query, chosen, tenant_id, self._clickhouse.database).statement()
        rows = await self._clickhouse.query(statement.sql, statement.params)
        if len(rows) > MAX_ROWS:
            raise QueryError(f"The answer has more than {MAX_ROWS} rows: narrow the window, the filters or the groupBy")
        columns = statement.columns
        grouped: dict[tuple[int, GroupKey], list[Partial]] = {}
        # Traces without the metadata key, when computed here: all traces (src 2) minus the
        # rollup rows of those with it (src 1), per bucket and other groups.
        minuends: dict[tuple[int, GroupKey], Partial] = {}
        subtrahends: dict[tuple[int, GroupKey], list[Partial]] = {}
        at = statement.subtract
        for row in rows:
            raw_key = tuple(row[f"g{i}"] for i in range(statement.group_count))
            part = Partial(int(row["total"]), {alias: row[alias] for alias, _, _ in columns.stats})
            bucket, src = int(row["b"]), int(row["src"])
            if at is not None and src:
                rest = (bucket, raw_key[:at] + raw_key[at + 1 :])
                if src == 2:
                    minuends[rest] = part
                    continue
                subtrahends.setdefault(rest, []).append(part)
            grouped.setdefault((bucket, normalise_key(raw_key)), []).append(part)
        for (bucket, others), whole in minuends.items():
            absent = subtract(columns, whole, merge(columns, subtrahends.get((bucket, others), ())))
            assert at is not None
            key = normalise_key((*others[:at], None, *others[at:]))
            grouped.setdefault((bucket, key), []).append(absent)
        parts = {k: merge(columns, v) if len(v) > 1 else v[0] for k, v in grouped.items()}
        if len({key for _, key in parts}) > MAX_GROUPS:
            raise QueryError(f"More than {MAX_GROUPS} groups: narrow the filters or group by fewer fields")
        log.debug("query_planned", tiers=[s.tier for s in chosen.segments], metadata=chosen.metadata_key)
        return Partials(columns, parts, chosen)

    async def run(self, query: Query, tenant_id: str) -> list[dict[str, Any]]:
        found = await self.partials(query, tenant_id)
        return data_points(query, found.columns, found.parts)
