"""Partitioning by time of receipt (issue 15, finding 6) and the migration that gets there.

Before: traces, spans and events were partitioned by the client's started_at, so one batch
spread over 200 months made an insert touch 200 partitions ("too many partitions"), which
failed the writer's batch three times and forced record-by-record inserts for everyone.
"""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from prometheus_client import REGISTRY

from tests.integration.conftest import Harness, Tenant, eventually, trace
from tests.integration.test_bad_input import expect_error
from trulayer_common.clickhouse import ClickHouse, apply_migrations
from trulayer_common.clickhouse.migrations import load_migrations, run_statement
from trulayer_common.clickhouse.rebuild import rebuild_table

TABLES = ("traces", "spans", "events", "alert_events", "anomalies")


def scratch_database(harness: Harness) -> ClickHouse:
    """The test session's chDB (one per process) under a database of its own."""
    ch = copy.copy(harness.clickhouse)
    ch.database = f"mig_{uuid.uuid4().hex[:10]}"
    return ch


async def migrate_until(ch: ClickHouse, last: int) -> None:
    """The schema as a deployment of migrations 1..``last`` left it."""
    await apply_migrations_of(ch, [m for m in load_migrations() if m[0] <= last])


async def apply_migrations_of(ch: ClickHouse, migrations: list[tuple[int, str, list[str]]]) -> None:
    db = ch.database
    await ch.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    await ch.command(
        f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations "
        "(version UInt32, name String, applied_at DateTime DEFAULT now()) ENGINE = ReplacingMergeTree ORDER BY version"
    )
    for version, name, statements in migrations:
        for statement in statements:
            await run_statement(ch, statement)
        await ch.command(f"INSERT INTO {db}.schema_migrations (version, name) VALUES ({version}, '{name}')")


def months_ago(n: int) -> str:
    now = datetime.now(UTC)
    return (now.replace(day=1, hour=12) - timedelta(days=31 * n)).isoformat()


async def populate(ch: ClickHouse, months: int) -> None:
    """Rows as the 0001/0003 schema held them: traces spread over ``months`` months."""
    traces, spans, events = [], [], []
    received = datetime.now(UTC).isoformat()
    for m in range(months):
        trace_id = f"t{m:04d}"
        started = months_ago(m)
        traces.append(
            {
                "tenant_id": "acme",
                "project_id": "p",
                "id": trace_id,
                "name": f"trace {m}",
                "input": '{"q": 1}',
                "latency_ms": 12.5 + m,
                "cost": 0.001 * m,
                "error": "boom" if m % 7 == 0 else None,
                "status": "error" if m % 7 == 0 else "success",
                "prompt_tokens": 4_000_000_000,
                "completion_tokens": m,
                "total_tokens": 4_000_000_000 + m,
                "tag_list": ["a", f"m{m}"],
                "metadata": '{"k": "v"}',
                "started_at": started,
                "created_at": received,
                "span_count": 2,
                "retention_days": 30,
            }
        )
        for s in range(2):
            spans.append(
                {
                    "tenant_id": "acme",
                    "project_id": "p",
                    "trace_id": trace_id,
                    "id": f"{trace_id}-s{s}",
                    "name": "llm",
                    "type": "llm",
                    "prompt_tokens": 7 + s,
                    "metadata": "{}",
                    "start_time": started,
                    "trace_started_at": started,
                    "created_at": received,
                    "retention_days": 30,
                }
            )
        events.append(
            {
                "tenant_id": "acme",
                "project_id": "p",
                "trace_id": trace_id,
                "id": f"{trace_id}-e",
                "level": "info",
                "message": "hello",
                "metadata": "{}",
                "timestamp": started,
                "trace_started_at": started,
                "created_at": received,
                "retention_days": 30,
            }
        )
    # The old schema accepts at most 100 partitions per insert: write in slices.
    for start in range(0, months, 50):
        await ch.insert_json_rows("traces", traces[start : start + 50])
        await ch.insert_json_rows("spans", spans[2 * start : 2 * start + 100])
        await ch.insert_json_rows("events", events[start : start + 50])
    await ch.insert_json_rows(
        "alert_events",
        [
            {
                "tenant_id": "acme",
                "project_id": "p",
                "id": f"a{n}",
                "rule_id": "r",
                "metric": "volume",
                "threshold_value": 1,
                "metric_value": 2,
                "triggered_at": months_ago(n),
                "notification_sent": n % 2 == 0,
                "version": n,
                "created_at": received,
            }
            for n in range(5)
        ],
    )
    await ch.insert_json_rows(
        "anomalies",
        [
            {
                "tenant_id": "acme",
                "project_id": "p",
                "id": f"an{n}",
                "type": "volume_anomaly",
                "metric": "volume",
                "severity": "low",
                "observed_value": 1.5,
                "window_start": months_ago(n),
                "window_end": months_ago(n),
                "detected_at": received,
            }
            for n in range(3)
        ],
    )


async def snapshot(ch: ClickHouse) -> dict[str, list[dict[str, Any]]]:
    return {t: await ch.query(f"SELECT * FROM {ch.database}.{t} ORDER BY id") for t in TABLES}


async def partition_keys(ch: ClickHouse) -> dict[str, str]:
    rows = await ch.query(
        "SELECT name, partition_key FROM system.tables WHERE database = {db:String}", {"db": ch.database}
    )
    return {r["name"]: r["partition_key"] for r in rows}


async def test_upgrading_a_populated_database_keeps_every_row(harness: Harness) -> None:
    ch = scratch_database(harness)
    try:
        await migrate_until(ch, 3)
        await populate(ch, 120)
        before = await snapshot(ch)
        assert (await partition_keys(ch))["traces"] == "toYYYYMM(started_at)"

        applied = await apply_migrations(ch)
        assert applied[0] == 4 and applied == sorted(applied)  # 0004 first, then any later ones
        after = await snapshot(ch)
        assert {t: len(rows) for t, rows in after.items()} == {
            "traces": 120,
            "spans": 240,
            "events": 120,
            "alert_events": 5,
            "anomalies": 3,
        }
        assert after == before  # every value of every row, token counts included
        keys = await partition_keys(ch)
        assert [keys[t] for t in TABLES] == ["toYYYYMM(created_at)"] * 4 + ["toYYYYMM(detected_at)"]
        assert not [name for name in keys if "__" in name]  # no leftovers

        # 200 months of started_at in one insert: one partition now (the old schema refused
        # more than 100 per insert block).
        rows = [{**before["traces"][0], "id": f"x{m}", "started_at": months_ago(m)} for m in range(200)]
        for row in rows:
            for name in ("started_at", "created_at", "ended_at"):
                row[name] = row[name].isoformat() if isinstance(row[name], datetime) else row[name]
        await ch.insert_json_rows("traces", rows)
        parts = await ch.query(
            "SELECT uniqExact(partition) AS n FROM system.parts WHERE database = {db:String} AND table = 'traces' "
            "AND active",
            {"db": ch.database},
        )
        assert parts[0]["n"] <= 2
        assert await apply_migrations(ch) == []  # idempotent
    finally:
        await ch.command(f"DROP DATABASE IF EXISTS {ch.database}")


async def test_an_interrupted_rebuild_resumes_without_losing_rows(harness: Harness) -> None:
    ch = scratch_database(harness)
    statements = {s.split(" AS", 1)[0].split(".")[-1]: s.split(" AS", 1)[1].strip() for s in load_migrations()[3][2]}
    db = ch.database
    try:
        await migrate_until(ch, 3)
        await populate(ch, 10)
        # Interrupted before the swap: a partial copy under the temporary name.
        create_traces = statements["traces"]
        await ch.command(create_traces.replace("{db}.traces", f"{db}.traces__new", 1).replace("{db}", db))
        await ch.command(f"INSERT INTO {db}.traces__new SELECT * FROM {db}.traces LIMIT 3")
        assert await rebuild_table(ch, "traces", create_traces) is True
        assert len(await ch.query(f"SELECT id FROM {db}.traces")) == 10

        # Interrupted after the swap (spans): the copy was made and swapped, then a writer still
        # running appended to the old table, now under the temporary name, and the process died.
        create_spans = statements["spans"]
        mark = await ch.query(
            "SELECT max(max_block_number) AS b FROM system.parts WHERE database = {db:String} AND table = 'spans'",
            {"db": db},
        )
        await ch.command(
            f"CREATE TABLE IF NOT EXISTS {db}.schema_rebuilds (table String, mark UInt64, at DateTime DEFAULT now()) "
            "ENGINE = ReplacingMergeTree(at) ORDER BY table"
        )
        await ch.command(f"INSERT INTO {db}.schema_rebuilds (table, mark) VALUES ('spans', {mark[0]['b']})")
        await ch.command(create_spans.replace("{db}.spans", f"{db}.spans__new", 1).replace("{db}", db))
        await ch.command(f"INSERT INTO {db}.spans__new SELECT * FROM {db}.spans")
        await ch.command(f"EXCHANGE TABLES {db}.spans AND {db}.spans__new")
        late = (await ch.query(f"SELECT * FROM {db}.spans__new ORDER BY id LIMIT 1"))[0]
        late = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in late.items()}
        await ch.insert_json_rows("spans__new", [{**late, "id": "late-straggler"}])

        assert await rebuild_table(ch, "spans", create_spans) is False
        ids = [r["id"] for r in await ch.query(f"SELECT id FROM {db}.spans ORDER BY id")]
        assert "late-straggler" in ids and len(ids) == 21  # 20 copied + the straggler, nothing twice
        assert "spans__new" not in await partition_keys(ch)
        assert (await partition_keys(ch))["spans"] == "toYYYYMM(created_at)"
    finally:
        await ch.command(f"DROP DATABASE IF EXISTS {ch.database}")


def _write_retries() -> float:
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "trulayer_consumer_write_retries"
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


@pytest.mark.parametrize("months", [200])
async def test_traces_spread_over_months_never_stall_the_writer(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant, months: int
) -> None:
    """Timestamps outside a year are refused at the edge; a batch spanning the whole accepted
    year is stored in one go, in the partition of its receipt."""
    spread = [trace(started_at=months_ago(m)) for m in range(months)][:100]
    async with http.post(
        f"{harness.gateway_url}/v1/ingest/batch", json={"traces": spread}, headers=tenant.headers
    ) as resp:
        await expect_error(resp, 400, "validation_error", "started_at")

    retries = _write_retries()
    year = [trace(started_at=(datetime.now(UTC) - timedelta(days=3.6 * n)).isoformat()) for n in range(100)]
    async with http.post(
        f"{harness.gateway_url}/v1/ingest/batch", json={"traces": year}, headers=tenant.headers
    ) as resp:
        assert resp.status == 201, await resp.text()

    async def stored() -> bool:
        return len(await harness.stored_traces(tenant.id)) == 100

    await eventually(stored)
    assert _write_retries() == retries  # never refused, never retried, never isolated record by record
    rows = await harness.clickhouse.query(
        f"SELECT DISTINCT _partition_id AS p FROM {harness.clickhouse.database}.traces WHERE tenant_id = {{t:String}}",
        {"t": tenant.id},
    )
    assert len(rows) == 1  # 12 months of started_at, one month of receipt
