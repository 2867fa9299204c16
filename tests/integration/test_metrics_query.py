"""POST /v1/metrics/query against the real stack: known traces ingested through the API, every
aggregation type, groupBy on fields and metadata, each operator, timeseries bucket edges
(inclusive start, exclusive end, empty buckets) checked against values computed here; tenant
scoping, hostile input, malformed queries (400 naming the problem), the other data sources."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from tests.integration.conftest import Harness, Tenant, eventually, trace
from tests.integration.query_support import (
    INTEGER,
    NUMERIC,
    PERCENTILE,
    Row,
    aggregate,
    close,
    dataset,
    hour_floor,
    ingest,
    iso,
    matches,
    now_utc,
)
from tests.integration.test_bad_input import expect_error
from trulayer_common.schemas.metrics_query import MetricsQueryResponse

KINDS = ("sum", "count", "countDistinct", "min", "max", "avg", *PERCENTILE)


@pytest.fixture(scope="module")
async def loaded(harness: Harness, http: aiohttp.ClientSession) -> tuple[Tenant, list[Row], Any]:
    """One tenant with the known traces (module-scoped: ingested once for these tests)."""
    tenant = await harness.new_tenant()
    base = hour_floor(now_utc()) - timedelta(hours=6)
    rows = dataset(tenant.project_id, base)
    await ingest(http, harness, tenant, rows)
    return tenant, rows, base


async def run(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant, body: dict[str, Any]
) -> list[dict[str, Any]]:
    async with http.post(f"{harness.gateway_url}/v1/metrics/query", json=body, headers=tenant.headers) as resp:
        assert resp.status == 200, await resp.text()
        answer = await resp.json()
    MetricsQueryResponse.model_validate(answer)
    return list(answer["data"]["dataPoints"])


def window(base: Any, hours: int = 4, **fields: Any) -> dict[str, Any]:
    """A window a little wider than the data, not on hour edges (so rollups and raw rows both answer)."""
    start = base - timedelta(minutes=17, seconds=3)
    end = base + timedelta(hours=hours, minutes=9, milliseconds=500)
    return {"startTime": iso(start), "endTime": iso(end), "dataSource": "traces", **fields}


def group_rows(rows: list[Row], names: list[str]) -> dict[tuple[Any, ...], list[Row]]:
    groups: dict[tuple[Any, ...], list[Row]] = defaultdict(list)
    for row in rows:
        groups[tuple(row.read(n) or None for n in names)].append(row)
    return groups


def check_rows(points: list[dict[str, Any]], rows: list[Row], names: list[str], aggregations: list[dict[str, str]]):
    expected = group_rows(rows, names)
    got = {tuple(p[n] for n in names): p for p in points}
    want_keys = {
        tuple(int(v) if n in INTEGER and v is not None else v for n, v in zip(names, k, strict=True)) for k in expected
    }
    assert set(got) == want_keys, (sorted(map(str, got)), sorted(map(str, want_keys)))
    for key, members in expected.items():
        point = got[tuple(int(v) if n in INTEGER and v is not None else v for n, v in zip(names, key, strict=True))]
        assert point["total"] == len(members)
        for a in aggregations:
            name = a["type"] + a["column"][0].upper() + a["column"][1:]
            want = aggregate(members, a["type"], a["column"])
            assert close(point[name], want, a["type"]), (key, name, point[name], want)


async def test_every_aggregation_type_over_every_numeric_column(http, harness, loaded):
    tenant, rows, base = loaded
    for column in sorted(NUMERIC):
        aggregations = [{"type": k, "column": column} for k in KINDS]
        points = await run(http, harness, tenant, window(base, aggregations=aggregations))
        assert len(points) == 1
        check_rows(points, rows, [], aggregations)
    counted = [
        {"type": k, "column": c} for c in ("traceId", "modelName", "conversationID") for k in ("count", "countDistinct")
    ]
    check_rows(await run(http, harness, tenant, window(base, aggregations=counted)), rows, [], counted)


@pytest.mark.parametrize(
    "group_by",
    [
        ["modelName"],
        ["status", "errorType"],
        ["metadata.team"],
        ["metadata.owner"],
        ["modelName", "metadata.env"],
        ["name", "projectId"],
        ["metadata.n"],
    ],
)
async def test_group_by_fields_and_metadata(http, harness, loaded, group_by):
    tenant, rows, base = loaded
    aggregations = [{"type": t, "column": "latencyMs"} for t in ("count", "sum", "avg", "p50", "p99", "max")]
    aggregations.append({"type": "sum", "column": "costInUSD"})
    if group_by == ["metadata.team"]:
        aggregations = [a for a in aggregations if a["type"] != "max"]  # served from the rollup (see test_rollups)
    points = await run(http, harness, tenant, window(base, groupBy=group_by, aggregations=aggregations))
    check_rows(points, rows, group_by, aggregations)


OPERATOR_CASES: list[tuple[str, str, Any]] = [
    ("modelName", "EQUAL", "gpt-4o"),
    ("modelName", "NOT_EQUAL", "gpt-4o"),
    ("modelName", "IN", ["gpt-4o", "claude-3-5"]),
    ("modelName", "NOT_IN", ["gpt-4o"]),
    ("modelName", "IS_NULL", True),
    ("modelName", "IS_NULL", False),
    ("name", "STRING_CONTAINS", "mar"),
    ("name", "STRING_NOT_CONTAINS", "mar"),
    ("name", "STRING_STARTS_WITH", "ch"),
    ("name", "STRING_NOT_STARTS_WITH", "ch"),
    ("name", "STRING_ENDS_WITH", "ed"),
    ("name", "STRING_NOT_ENDS_WITH", "ed"),
    ("latencyMs", "GREATER_THAN", 150),
    ("latencyMs", "GREATER_THAN_EQUAL", 150),
    ("latencyMs", "LESS_THAN", 150),
    ("latencyMs", "LESS_THAN_EQUAL", 150),
    ("latencyMs", "BETWEEN", [100, 200]),
    ("latencyMs", "IS_NULL", True),
    ("costInUSD", "NOT_EQUAL", 0.5),
    ("inputTokens", "IN", [1, 2, 3, 100, 250]),
    ("inputTokens", "NOT_IN", [1, 2, 3]),
    ("totalTokens", "GREATER_THAN", 300),
    ("status", "EQUAL", "error"),
    ("errorType", "IN", ["timeout", "rate_limit"]),
    ("errorType", "IS_NULL", True),
    ("conversationID", "EQUAL", "s-3"),
    ("conversationID", "NOT_IN", ["s-3", "s-5"]),
    ("traceId", "IN", ["q-0001-x", "nope"]),
    ("tags", "ARRAY_HAS_ANY", ["prod", "tier:1"]),
    ("tags", "ARRAY_HAS_NONE", ["prod"]),
    ("metadata.team", "EQUAL", "ads"),
    ("metadata.team", "NOT_EQUAL", "ads"),
    ("metadata.team", "IN", ["ads", "a'b; --"]),
    ("metadata.team", "NOT_IN", ["ads"]),
    ("metadata.team", "IS_NULL", True),
    ("metadata.team", "IS_NULL", False),
    ("metadata.env", "STRING_STARTS_WITH", "pro"),
    ("metadata.owner", "STRING_ENDS_WITH", "-3"),
    ("metadata.n", "EQUAL", "2"),
]


@pytest.mark.parametrize(("field", "operator", "value"), OPERATOR_CASES)
async def test_each_operator(http, harness, loaded, field, operator, value):
    tenant, rows, base = loaded
    if field == "traceId":
        value = [rows[1].body["id"], rows[7].body["id"], "nope"]
    elif field == "inputTokens":  # values the data holds (and one it does not)
        value = [rows[0].read(field), rows[5].read(field), rows[9].read(field), 10**9]
    numeric = field in NUMERIC
    kept = [r for r in rows if matches(r.read(field), operator, value, numeric)]
    assert kept and len(kept) < len(rows), "each case must keep some traces and drop others"
    condition: dict[str, Any] = {"operator": operator, "value": value}
    if field.startswith("metadata.") and operator in ("EQUAL", "IS_NULL"):
        condition["metadataKey"] = field.removeprefix("metadata.")  # both spellings of a metadata filter
    else:
        condition["fieldName"] = field
    aggregations = [{"type": "sum", "column": "costInUSD"}, {"type": "p90", "column": "latencyMs"}]
    points = await run(http, harness, tenant, window(base, filters=[condition], aggregations=aggregations))
    check_rows(points, kept, [], aggregations)


async def test_filters_are_and_combined(http, harness, loaded):
    tenant, rows, base = loaded
    filters = [
        {"fieldName": "modelName", "operator": "NOT_EQUAL", "value": "claude-3-5"},
        {"metadataKey": "team", "operator": "IN", "value": ["search", "ads"]},
        {"fieldName": "status", "operator": "EQUAL", "value": "success"},
    ]
    kept = [
        r
        for r in rows
        if r.read("modelName") != "claude-3-5"
        and r.metadata("team") in ("search", "ads")
        and r.read("status") == "success"
    ]
    points = await run(
        http,
        harness,
        tenant,
        window(base, filters=filters, groupBy=["metadata.team"], aggregations=[{"type": "count", "column": "traceId"}]),
    )
    check_rows(points, kept, ["metadata.team"], [{"type": "count", "column": "traceId"}])


async def test_timeseries_buckets_edges_and_empty_buckets(http, harness, loaded):
    """Hour buckets on the hour grid, the first and last clipped to the window: a trace exactly at
    an hour's start is in that hour (inclusive start), one at its last millisecond is not in the
    next (exclusive end); hours with no trace are answered with total 0."""
    tenant, rows, base = loaded
    start, end = base - timedelta(hours=2, minutes=30), base + timedelta(hours=4)
    aggregations = [
        {"type": t, "column": "latencyMs"}
        for t in ("count", "sum", "rateSum", "rateAvg", "rateMax", "ratePerMinute", "p50")
    ]
    body = {
        "startTime": iso(start),
        "endTime": iso(end),
        "dataSource": "traces",
        "type": "timeseries",
        "interval": "1 hour",
        "aggregations": aggregations,
    }
    points = await run(http, harness, tenant, body)
    edges = [start, base - timedelta(hours=2)] + [base + timedelta(hours=h) for h in range(-1, 5)]
    assert [p["startTimestamp"] for p in points] == [iso(e) for e in edges[:-1]]
    assert [p["endTimestamp"] for p in points] == [iso(e) for e in edges[1:]]
    for point, (low, high) in zip(points, itertools.pairwise(edges), strict=True):
        members = [r for r in rows if low <= r.started < high]
        seconds = (high - low).total_seconds()
        assert point["total"] == len(members)
        for a in aggregations:
            name = a["type"] + "LatencyMs"
            assert close(point[name], aggregate(members, a["type"], "latencyMs", seconds), a["type"]), (low, name)
    assert [p["total"] for p in points[:3]] == [0, 0, 0]  # before the data: empty buckets
    on_edge = [r for r in rows if r.started == base + timedelta(hours=1)]
    last_ms = [r for r in rows if r.started == base + timedelta(hours=1) - timedelta(milliseconds=1)]
    assert on_edge and last_ms  # the dataset has both; the counts above put each in its own hour


async def test_timeseries_with_group_by_and_a_window_edge_inside_the_data(http, harness, loaded):
    tenant, rows, base = loaded
    start, end = base + timedelta(minutes=20, seconds=5), base + timedelta(hours=2, minutes=40)
    body = {
        "startTime": iso(start),
        "endTime": iso(end),
        "dataSource": "traces",
        "type": "timeseries",
        "interval": "30 minutes",
        "groupBy": ["status"],
        "aggregations": [{"type": "sum", "column": "inputTokens"}],
    }
    points = await run(http, harness, tenant, body)
    inside = [r for r in rows if start <= r.started < end]
    for status in ("success", "error"):
        series = [p for p in points if p["status"] == status]
        assert len(series) == 6  # 10:20:05-10:30, then five half hours, the last clipped at 12:40
        assert sum(p["total"] for p in series) == len([r for r in inside if r.read("status") == status])
        assert sum(p["sumInputTokens"] for p in series) == sum(
            r.read("inputTokens") for r in inside if r.read("status") == status
        )


async def test_other_tenants_never_count(http, harness, loaded):
    tenant, _rows, base = loaded
    other = await harness.new_tenant()
    points = await run(http, harness, other, window(base, aggregations=[{"type": "count", "column": "traceId"}]))
    assert points == [{"total": 0, "countTraceId": 0}]
    # Another tenant's project id as a filter finds nothing either.
    query = window(base, filters=[{"fieldName": "projectId", "operator": "EQUAL", "value": tenant.project_id}])
    assert (await run(http, harness, other, query))[0]["total"] == 0


HOSTILE = ["x' OR '1'='1", "'; DROP TABLE traces; --", "\\'; SELECT * FROM system.users --", "a'b; --", "{p0:String}"]


async def test_hostile_input_is_data_never_sql(http, harness, loaded):
    tenant, rows, base = loaded
    for value in HOSTILE:
        for condition in (
            {"fieldName": "modelName", "operator": "EQUAL", "value": value},
            {"fieldName": "name", "operator": "STRING_CONTAINS", "value": value},
            {"metadataKey": value, "operator": "EQUAL", "value": value},
            {"metadataKey": "team", "operator": "IN", "value": [value, "ads"]},
            {"fieldName": "traceId", "operator": "NOT_IN", "value": [value]},
        ):
            points = await run(http, harness, tenant, window(base, filters=[condition], groupBy=[f"metadata.{value}"]))
            kept = [
                r
                for r in rows
                if matches(
                    r.read(condition.get("fieldName") or f"metadata.{condition['metadataKey']}"),
                    condition["operator"],
                    condition["value"],
                    False,
                )
            ]
            assert sum(p["total"] for p in points) == len(kept), (value, condition)
    # The literal value stored in metadata is matched as data.
    points = await run(
        http, harness, tenant, window(base, filters=[{"metadataKey": "team", "operator": "EQUAL", "value": "a'b; --"}])
    )
    assert points[0]["total"] == len([r for r in rows if r.metadata("team") == "a'b; --"]) > 0
    for name in ("latencyMs); DROP TABLE traces; --", "metadata", "1=1"):
        async with http.post(
            f"{harness.gateway_url}/v1/metrics/query", headers=tenant.headers, json=window(base, groupBy=[name])
        ) as resp:
            await expect_error(resp, 400, "invalid_query", "Unsupported groupBy field")
    assert len(await harness.stored_traces(tenant.id)) == len(rows)  # nothing was dropped


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"dataSource": "traces"}, "startTime is required"),
        ({"filters": [{"fieldName": "nope", "operator": "EQUAL", "value": 1}]}, "Unsupported filter name: nope"),
        (
            {"filters": [{"fieldName": "latencyMs", "operator": "STRING_CONTAINS", "value": "1"}]},
            "Operator STRING_CONTAINS is not allowed on filter name: latencyMs",
        ),
        ({"filters": [{"fieldName": "modelName", "operator": "IN", "value": "x"}]}, "expected a non-empty list"),
        ({"type": "timeseries", "interval": "1 hour 2 minute"}, "Invalid interval"),
        ({"type": "timeseries", "interval": "0 minute"}, "positive"),
        ({"type": "timeseries"}, "needs an interval"),
        ({"aggregations": [{"type": "rateSum", "column": "costInUSD"}]}, "only allowed in a timeseries"),
        ({"type": "timeseries", "interval": "1 second", "startTime": "2026-01-01T00:00:00Z"}, "Too many buckets"),
        ({"endTime": "2020-01-01T00:00:00Z"}, "endTime must be after startTime"),
        ({"dataSource": "logs"}, "Unsupported dataSource"),
        ({"aggregations": [{"type": "sum", "column": "tokens"}]}, "Unsupported aggregation column: tokens"),
    ],
)
async def test_malformed_queries_are_400_naming_the_problem(http, harness, tenant, body, message):
    now = now_utc()
    full = {"startTime": iso(now - timedelta(days=1)), "endTime": iso(now), "dataSource": "traces", **body}
    if body == {"dataSource": "traces"}:
        full.pop("startTime")
    async with http.post(f"{harness.gateway_url}/v1/metrics/query", json=full, headers=tenant.headers) as resp:
        await expect_error(resp, 400, "invalid_query", message)


async def test_bodies_and_credentials(http, harness, tenant):
    url = f"{harness.gateway_url}/v1/metrics/query"
    async with http.post(
        url, data=b"{not json", headers={**tenant.headers, "Content-Type": "application/json"}
    ) as resp:
        await expect_error(resp, 400, "malformed_json")
    async with http.post(
        url, data=b"x" * 70_000, headers={**tenant.headers, "Content-Type": "application/json"}
    ) as resp:
        await expect_error(resp, 413, "payload_too_large")
    async with http.post(url, data=b"{}", headers={**tenant.headers, "Content-Type": "text/plain"}) as resp:
        await expect_error(resp, 415, "unsupported_media_type")
    async with http.post(url, json={}) as resp:
        assert resp.status == 401
    now = now_utc()
    body = {"startTime": iso(now - timedelta(hours=1)), "endTime": iso(now), "dataSource": "traces"}
    async with http.post(url, json=body, headers=harness.session_headers(tenant.id, role="viewer")) as resp:
        assert resp.status == 200, await resp.text()  # a dashboard session, viewer and up


async def test_the_other_data_sources(http, harness, tenant):
    """spans, feedback and evaluations answer from their tables (raw), tenant-scoped."""
    now = now_utc()
    sent = trace(
        model="gpt-4o",
        spans=[
            {"name": "retrieve", "type": "retrieval", "latency_ms": 20, "metadata": {"index": "docs"}},
            {
                "name": "llm",
                "type": "llm",
                "model": "gpt-4o",
                "latency_ms": 80,
                "cost": 0.5,
                "prompt_tokens": 7,
                "error": "boom",
            },
        ],
    )
    async with http.post(f"{harness.gateway_url}/v1/ingest", json=sent, headers=tenant.headers) as resp:
        assert resp.status == 201
    await eventually(lambda: harness.stored_traces(tenant.id))
    for label, score in (("good", 1.0), ("bad", 0.0), ("good", 0.5)):
        async with http.post(
            f"{harness.gateway_url}/v1/feedback",
            headers=tenant.headers,
            json={"trace_id": sent["id"], "label": label, "score": score},
        ) as resp:
            assert resp.status == 201, await resp.text()
    window_body = {"startTime": iso(now - timedelta(hours=1)), "endTime": iso(now + timedelta(hours=1))}

    async def answered(source: str, expected_total: int, **fields: Any) -> list[dict[str, Any]]:
        async def check() -> Any:
            points = await run(http, harness, tenant, {**window_body, "dataSource": source, **fields})
            return points if sum(p["total"] for p in points) == expected_total else None

        return await eventually(check)  # type: ignore[no-any-return]

    spans = await answered(
        "spans",
        2,
        groupBy=["spanType", "status"],
        aggregations=[{"type": "sum", "column": "latencyMs"}, {"type": "sum", "column": "inputTokens"}],
    )
    by_type = {p["spanType"]: p for p in spans}
    assert by_type["llm"]["status"] == "error" and by_type["llm"]["sumLatencyMs"] == 80.0
    assert by_type["llm"]["sumInputTokens"] == 7 and by_type["retrieval"]["status"] == "success"
    indexed = await answered("spans", 1, filters=[{"metadataKey": "index", "operator": "EQUAL", "value": "docs"}])
    assert indexed[0]["total"] == 1
    feedback = await answered("feedback", 3, groupBy=["label"], aggregations=[{"type": "avg", "column": "score"}])
    assert {p["label"]: p["avgScore"] for p in feedback} == {"good": 0.75, "bad": 0.0}
    evaluations = await run(
        http,
        harness,
        tenant,
        {**window_body, "dataSource": "evaluations", "aggregations": [{"type": "avg", "column": "score"}]},
    )
    assert evaluations == [{"total": 0, "avgScore": None}]
    other = await harness.new_tenant()
    assert (await run(http, harness, other, {**window_body, "dataSource": "spans"}))[0]["total"] == 0


async def test_config_metrics_answers_from_the_decision_log(http, harness, tenant):
    reports = [
        {
            "model": "gpt-4o",
            "target_model": "gpt-4o-mini",
            "decision": "route",
            "config_type": "model_route",
            "status": "success",
            "metadata": {"team": "search"},
        },
        {
            "model": "gpt-4o",
            "target_model": "gpt-4o-mini",
            "decision": "route",
            "config_type": "model_route",
            "status": "fail",
            "metadata": {"team": "ads"},
        },
        {"model": "claude", "decision": "block", "config_type": "killswitch", "metadata": {"team": "search"}},
    ]
    async with http.post(
        f"{harness.gateway_url}/v1/control/decisions", json={"decisions": reports}, headers=tenant.headers
    ) as resp:
        assert resp.status == 202, await resp.text()
    now = now_utc()
    body = {
        "startTime": iso(now - timedelta(hours=1)),
        "endTime": iso(now + timedelta(minutes=5)),
        "dataSource": "configMetrics",
        "groupBy": ["requestedModel", "targetModel", "configType"],
        "aggregations": [{"type": "sum", "column": "loadbalanceTargetAttemptCount"}],
    }

    async def answered() -> Any:
        points = await run(http, harness, tenant, body)
        return points if sum(p["total"] for p in points) == 3 else None

    points = await eventually(answered, timeout=30)
    by = {(p["requestedModel"], p["targetModel"], p["configType"]): p["total"] for p in points}
    assert by == {("gpt-4o", "gpt-4o-mini", "model_route"): 2, ("claude", None, "killswitch"): 1}
    search = await run(
        http,
        harness,
        tenant,
        {**body, "groupBy": ["status"], "filters": [{"metadataKey": "team", "operator": "EQUAL", "value": "search"}]},
    )
    assert sum(p["total"] for p in search) == 2
