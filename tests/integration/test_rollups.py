"""Rollups: answers served from them equal the answers read from raw rows (counts and sums
exactly; percentiles from the same histograms, so exactly too, and within 1 % of the true value
computed here), and migration 0008 upgrades a populated database keeping every row and filling
the rollups from it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson
import pytest

from gateway.metrics_query import query_engine_key
from gateway.query.engine import MetadataKeys
from gateway.query.partials import Partial, data_points, merge, normalise_key
from gateway.query.plan import Plan, Segment, choose
from gateway.query.request import Query, parse_query
from gateway.query.sql import QuerySql
from tests.integration.conftest import Harness, eventually
from tests.integration.query_support import Row, aggregate, close, dataset, hour_floor, ingest, iso, now_utc
from tests.integration.test_partitions import apply_migrations_of, scratch_database
from trulayer_common.clickhouse import ClickHouse, apply_migrations
from trulayer_common.clickhouse.migrations import load_migrations, run_statement


async def raw_answer(ch: ClickHouse, query: Query, tenant_id: str) -> list[dict[str, Any]]:
    """The answer read from raw rows only: the same statement builder, with a plan of one raw segment."""
    statement = QuerySql(query, Plan((Segment("raw", query.start, query.end),)), tenant_id, ch.database).statement()
    rows = await ch.query(statement.sql, statement.params)
    grouped: dict[tuple[int, Any], list[Partial]] = {}
    for row in rows:
        key = normalise_key(tuple(row[f"g{i}"] for i in range(statement.group_count)))
        part = Partial(int(row["total"]), {alias: row[alias] for alias, _, _ in statement.columns.stats})
        grouped.setdefault((int(row["b"]), key), []).append(part)
    parts = {k: merge(statement.columns, v) for k, v in grouped.items()}
    return data_points(query, statement.columns, parts)


QUERIES: list[dict[str, Any]] = [
    {
        "groupBy": ["modelName"],
        "aggregations": [
            {"type": t, "column": c}
            for c in ("latencyMs", "costInUSD", "totalTokens")
            for t in ("count", "sum", "avg", "min", "max", "p50", "p95", "p99")
        ],
    },
    {
        "type": "timeseries",
        "interval": "1 hour",
        "groupBy": ["status"],
        "aggregations": [{"type": "p95", "column": "latencyMs"}, {"type": "rateSum", "column": "costInUSD"}],
    },
    {"type": "timeseries", "interval": "10 minutes", "aggregations": [{"type": "sum", "column": "inputTokens"}]},
    {
        "groupBy": ["errorType", "projectId"],
        "filters": [{"fieldName": "status", "operator": "EQUAL", "value": "error"}],
        "aggregations": [{"type": "max", "column": "latencyMs"}],
    },
    {
        "groupBy": ["metadata.team"],
        "aggregations": [{"type": "p50", "column": "latencyMs"}, {"type": "sum", "column": "costInUSD"}],
    },
    {
        "groupBy": ["modelName"],
        "filters": [{"metadataKey": "env", "operator": "NOT_EQUAL", "value": "prod"}],
        "aggregations": [{"type": "p90", "column": "latencyMs"}, {"type": "avg", "column": "outputTokens"}],
    },
    {
        "filters": [{"metadataKey": "team", "operator": "IN", "value": ["ads", "search"]}],
        "aggregations": [{"type": "min", "column": "latencyMs"}, {"type": "max", "column": "costInUSD"}],
    },
]


@pytest.mark.parametrize("shape", QUERIES)
async def test_rollup_answers_equal_raw_answers(http: aiohttp.ClientSession, harness: Harness, shape: dict[str, Any]):
    tenant = await harness.new_tenant()
    base = hour_floor(now_utc()) - timedelta(hours=7)
    rows = dataset(tenant.project_id, base, n=300, seed=11)
    await ingest(http, harness, tenant, rows)
    start, end = base - timedelta(minutes=42, seconds=13, milliseconds=7), base + timedelta(hours=4, seconds=31)
    query = parse_query({"startTime": iso(start), "endTime": iso(end), "dataSource": "traces", **shape})
    engine = harness.gateway_app[query_engine_key]
    plan = choose(query, await MetadataKeys(harness.clickhouse).current())
    tiers = {s.tier for s in plan.segments}
    assert "raw" in tiers and tiers & {"hour", "minute"}, "the query must be served (mostly) from rollups"
    served = await engine.run(query, tenant.id)
    assert served == await raw_answer(harness.clickhouse, query, tenant.id)
    # And within the sketch's error of the truth, for the query without groups.
    if not query.group_by and not query.filters and query.interval is None:
        for aggregation in query.aggregations:
            want = aggregate(rows, aggregation.type, aggregation.field.name)
            assert close(served[0][aggregation.key], want, aggregation.type)


async def populate(ch: ClickHouse, rows: list[Row], tenant: str, *, redelivered: int = 0) -> None:
    """Rows as the trace writer stores them; the first ``redelivered`` written twice."""
    received = datetime.now(UTC).isoformat()
    traces = []
    for row in rows:
        b = row.body
        error = b.get("error")
        traces.append(
            {
                **{k: v for k, v in b.items() if k not in ("tags", "metadata", "spans")},
                "tenant_id": tenant,
                "metadata": orjson.dumps(b["metadata"]).decode(),
                "status": "error" if error else "success",
                "failure_type": row.field("errorType"),
                "total_tokens": row.field("totalTokens"),
                "created_at": received,
                "retention_days": 30,
            }
        )
    await ch.insert_json_rows("traces", traces)
    if redelivered:
        await ch.insert_json_rows("traces", traces[:redelivered])


async def test_upgrading_a_populated_database_fills_the_rollups(harness: Harness):
    ch = scratch_database(harness)
    before = [m for m in load_migrations() if m[0] < 8]
    await apply_migrations_of(ch, before)
    base = hour_floor(now_utc()) - timedelta(hours=30)
    rows = dataset("p1", base, n=400, seed=3)
    await populate(ch, rows, "acme", redelivered=50)  # FINAL collapses the redelivery; so does the fill
    db = ch.database
    applied = await apply_migrations(ch)
    assert 8 in applied and 9 in applied
    kept = await ch.query(f"SELECT count() AS n FROM {db}.traces FINAL WHERE tenant_id = 'acme'")
    assert kept[0]["n"] == len(rows)
    sorting = await ch.query(
        "SELECT sorting_key AS k FROM system.tables WHERE database = {db:String} AND name = 'traces'", {"db": db}
    )
    assert sorting[0]["k"].startswith("tenant_id, toStartOfHour(started_at)")

    async def per_hour(table: str, extra: str = "") -> dict[Any, int]:
        found = await ch.query(
            f"SELECT toStartOfHour(bucket) AS h, toUInt64(sum(traces)) AS n FROM {db}.{table} "
            f"WHERE tenant_id = 'acme' {extra} GROUP BY h"
        )
        return {r["h"]: int(r["n"]) for r in found}

    raw = await ch.query(
        f"SELECT toStartOfHour(started_at) AS h, count() AS n FROM {db}.traces FINAL "
        "WHERE tenant_id = 'acme' GROUP BY h"
    )
    expected = {r["h"]: int(r["n"]) for r in raw}
    assert await per_hour("trace_rollup_minute") == expected == await per_hour("trace_rollup_hour")
    teams = await ch.query(
        f"SELECT meta_value AS v, toUInt64(sum(traces)) AS n FROM {db}.trace_metadata_rollup_hour "
        "WHERE tenant_id = 'acme' AND meta_key = 'team' GROUP BY v"
    )
    want: dict[str, int] = {}
    for row in rows:
        if row.metadata("team"):
            want[row.metadata("team")] = want.get(row.metadata("team"), 0) + 1
    assert {r["v"]: int(r["n"]) for r in teams} == want
    assert (await ch.query(f"SELECT count() AS n FROM {db}.trace_metadata_rollup_hour WHERE meta_key = 'owner'"))[0][
        "n"
    ] == 0  # undeclared: not rolled up
    # Refilling again is harmless (the fill empties first), and new inserts reach the rollups.
    for version, _, statements in load_migrations():
        if version == 8:
            for statement in statements:
                if statement.startswith("REFILL"):
                    await run_statement(ch, statement)
    assert sum((await per_hour("trace_rollup_hour")).values()) == len(rows)
    await populate(ch, dataset("p1", base + timedelta(hours=5), n=10, seed=99), "acme")
    assert sum((await per_hour("trace_rollup_hour")).values()) == len(rows) + 10
    await ch.command(f"DROP DATABASE {db}")


def otlp_body(trace_id: str, spans: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "rollups"}}]},
                "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}],
            }
        ]
    }


def otlp_span(trace_id: str, span_id: str, start: datetime, ms: int, name: str, parent: str = "") -> dict[str, Any]:
    begin = int(start.timestamp() * 10**9)
    span: dict[str, Any] = {
        "traceId": trace_id,
        "spanId": span_id,
        "name": name,
        "kind": "SPAN_KIND_INTERNAL",
        "startTimeUnixNano": str(begin),
        "endTimeUnixNano": str(begin + ms * 10**6),
        "attributes": [{"key": "gen_ai.usage.input_tokens", "value": {"intValue": "5"}}],
    }
    if parent:
        span["parentSpanId"] = parent
    return span


async def test_traces_assembled_from_several_exports_count_once(http: aiohttp.ClientSession, harness: Harness):
    """An OTLP trace stored as a placeholder, then as its root's version (whose start moved to
    the previous hour): the rollups hold it once, as its newest version (its superseded
    versions are subtracted), and answer as raw rows do."""
    tenant = await harness.new_tenant()
    hour = hour_floor(now_utc()) - timedelta(hours=3)
    split, whole = uuid.uuid4().hex, uuid.uuid4().hex
    exports = [
        [otlp_span(split, "00000000000000c1", hour + timedelta(seconds=30), 200, "child", "00000000000000b1")],
        [otlp_span(split, "00000000000000b1", hour - timedelta(seconds=10), 900, "root")],
        [otlp_span(whole, "00000000000000d1", hour + timedelta(minutes=20), 50, "alone")],
    ]
    for spans in exports:
        async with http.post(
            f"{harness.gateway_url}/v1/otlp/traces", json=otlp_body(spans[0]["traceId"], spans), headers=tenant.headers
        ) as resp:
            assert resp.status == 200, await resp.text()

        async def stored(trace_id: str = spans[0]["traceId"], name: str = spans[0]["name"]) -> bool:
            async with http.get(f"{harness.gateway_url}/v1/traces/{trace_id}", headers=tenant.headers) as resp:
                return resp.status == 200 and (await resp.json())["name"] in (name, "root")

        await eventually(stored)
    query = parse_query(
        {
            "startTime": iso(hour - timedelta(hours=2)),
            "endTime": iso(hour + timedelta(hours=2)),
            "dataSource": "traces",
            "aggregations": [
                {"type": "sum", "column": "latencyMs"},
                {"type": "sum", "column": "inputTokens"},
                {"type": "p50", "column": "latencyMs"},
                {"type": "count", "column": "latencyMs"},
            ],
        }
    )
    assert {s.tier for s in choose(query, {}).segments} == {"hour"}
    engine = harness.gateway_app[query_engine_key]

    async def settled() -> list[dict[str, Any]] | None:
        served = await engine.run(query, tenant.id)
        return served if served[0]["total"] == 2 else None

    served = await eventually(settled)
    assert served == await raw_answer(harness.clickhouse, query, tenant.id)
    assert served[0]["sumLatencyMs"] == pytest.approx(900 + 50) and served[0]["sumInputTokens"] == 15
    # The hour of the placeholder holds the untouched trace only; the root's hour holds the trace.
    ch = harness.clickhouse
    per_hour = await ch.query(
        f"SELECT bucket, toInt64(sum(traces)) AS n FROM {ch.database}.trace_rollup_hour "
        "WHERE tenant_id = {t:String} GROUP BY bucket HAVING n != 0 ORDER BY bucket",
        {"t": tenant.id},
    )
    assert [(r["bucket"].replace(tzinfo=UTC), r["n"]) for r in per_hour] == [
        (hour - timedelta(hours=1), 1),
        (hour, 1),
    ]
