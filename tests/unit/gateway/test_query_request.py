"""The checks of POST /v1/metrics/query bodies: every malformed query is refused with a message
naming the field, operator or value at fault; good ones parse into the declared names."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.query.intervals import Interval, IntervalError, from_seconds, parse_interval
from gateway.query.request import MAX_BUCKETS, QueryError, parse_query

WINDOW = {"startTime": "2026-11-01T00:00:00Z", "endTime": "2026-11-02T00:00:00Z", "dataSource": "traces"}


def body(**fields: Any) -> dict[str, Any]:
    return {**WINDOW, **fields}


def refused(payload: Any) -> str:
    with pytest.raises(QueryError) as caught:
        parse_query(payload)
    return str(caught.value)


def test_a_full_query_parses_into_declared_fields() -> None:
    query = parse_query(
        body(
            dataSource="modelMetrics",
            type="timeseries",
            interval="1 hours",
            intervalInSeconds=60,
            aggregations=[{"type": "p99", "column": "latencyMs"}, {"type": "rateSum", "column": "costInUSD"}],
            groupBy=["modelName", "metadata.team"],
            filters=[
                {"fieldName": "status", "operator": "EQUAL", "value": "error"},
                {"metadataKey": "env", "operator": "IN", "value": ["prod", "staging"]},
                {"fieldName": "metadata.region", "operator": "STRING_STARTS_WITH", "value": "eu"},
                {"fieldName": "latencyMs", "operator": "BETWEEN", "value": [10, 20.5]},
                {"fieldName": "tags", "operator": "ARRAY_HAS_ANY", "value": ["prod"]},
            ],
        )
    )
    assert query.source.name == "traces"
    assert query.interval == Interval(1, "hour")  # interval wins over intervalInSeconds
    assert [a.key for a in query.aggregations] == ["p99LatencyMs", "rateSumCostInUSD"]
    assert [t.name for t in query.group_by] == ["modelName", "metadata.team"]
    assert query.group_by[1].metadata_key == "team"
    assert query.filters[1].target.name == "metadata.env" and query.filters[1].value == ("prod", "staging")
    assert query.filters[2].target.metadata_key == "region"
    assert query.filters[3].value == (10.0, 20.5)
    assert query.metadata_keys == {"team", "env", "region"}
    assert query.start == datetime(2026, 11, 1, tzinfo=UTC)


def test_interval_in_seconds_alone_and_the_default_distribution() -> None:
    assert parse_query(body(type="timeseries", intervalInSeconds=300)).interval == Interval(300, "second")
    query = parse_query(body())
    assert query.interval is None and query.aggregations == () and query.group_by == ()


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ([], "JSON object"),
        (body(dataSource="nope"), "Unsupported dataSource: 'nope'"),
        (body(dataSource=None), "Unsupported dataSource"),
        (body(type="histogram"), "Unsupported type: 'histogram'"),
        ({"endTime": "2026-11-02T00:00:00Z", "dataSource": "traces"}, "startTime is required"),
        (body(startTime="yesterday"), "Invalid startTime: 'yesterday'"),
        (body(endTime=12), "Invalid endTime"),
        (body(startTime="1900-01-01T00:00:00Z"), "Invalid startTime: expected a time from 1970"),
        (body(endTime="2026-10-01T00:00:00Z"), "endTime must be after startTime"),
        (body(endTime=WINDOW["startTime"]), "endTime must be after startTime"),
        (body(type="timeseries"), "timeseries query needs an interval"),
        (body(type="timeseries", interval="1 hour 30 minute"), "Invalid interval: '1 hour 30 minute'"),
        (body(type="timeseries", interval="0 hour"), "count must be a positive integer"),
        (body(type="timeseries", interval="-1 hour"), "Invalid interval"),
        (body(type="timeseries", interval="1 fortnight"), "Invalid interval: '1 fortnight'"),
        (body(type="timeseries", interval=3600), "interval must be a string"),
        (body(type="timeseries", interval="1000000000 year"), "longer than 200 years"),
        (body(type="timeseries", interval="999999999 weeks"), "longer than 200 years"),
        (body(type="timeseries", intervalInSeconds=0), "intervalInSeconds: 0"),
        (body(type="timeseries", intervalInSeconds=True), "intervalInSeconds must be a positive integer"),
        (
            body(type="timeseries", interval="1 second"),
            f"Too many buckets: 86400 1 second buckets (at most {MAX_BUCKETS})",
        ),
        (body(aggregations=[{"type": "median", "column": "latencyMs"}]), "Unsupported aggregation type: 'median'"),
        (body(aggregations=[{"type": "sum", "column": "speed"}]), "Unsupported aggregation column: speed"),
        (body(aggregations=[{"type": "sum"}]), "aggregations[0].column must be a field name"),
        (
            body(aggregations=[{"type": "sum", "column": "modelName"}]),
            "Aggregation sum is not allowed on column modelName",
        ),
        (
            body(aggregations=[{"type": "rateSum", "column": "costInUSD"}]),
            "Aggregation rateSum is only allowed in a timeseries",
        ),
        (body(aggregations=[{"type": "ratePerMinute", "column": "costInUSD"}]), "only allowed in a timeseries"),
        (body(aggregations="sum"), "aggregations must be a list"),
        (body(groupBy=["speed"]), "Unsupported groupBy field: speed"),
        (body(groupBy=["tags"]), "Unsupported groupBy field: tags (an array"),
        (body(groupBy=["metadata."]), "Invalid metadata key ''"),
        (body(groupBy=[7]), "groupBy field must be a non-empty string"),
        (body(filters=[{"fieldName": "speed", "operator": "EQUAL", "value": 1}]), "Unsupported filter name: speed"),
        (body(filters=[{"operator": "EQUAL", "value": 1}]), "filters[0] needs fieldName or metadataKey"),
        (body(filters=["x"]), "filters[0] must be an object"),
        (body(filters=[{"fieldName": "status", "operator": "LIKE", "value": "x"}]), "Unsupported operator 'LIKE'"),
        (
            body(filters=[{"fieldName": "latencyMs", "operator": "STRING_CONTAINS", "value": "1"}]),
            "Operator STRING_CONTAINS is not allowed on filter name: latencyMs",
        ),
        (
            body(filters=[{"fieldName": "traceId", "operator": "GREATER_THAN", "value": "a"}]),
            "Operator GREATER_THAN is not allowed on filter name: traceId",
        ),
        (
            body(filters=[{"fieldName": "tags", "operator": "EQUAL", "value": "a"}]),
            "Operator EQUAL is not allowed on filter name: tags",
        ),
        (
            body(filters=[{"fieldName": "modelName", "operator": "IN", "value": "gpt-4o"}]),
            "Invalid value for filter modelName with operator IN: expected a non-empty list",
        ),
        (
            body(filters=[{"fieldName": "modelName", "operator": "EQUAL", "value": ["a"]}]),
            "Invalid value for filter modelName with operator EQUAL: expected a single value",
        ),
        (
            body(filters=[{"fieldName": "latencyMs", "operator": "GREATER_THAN", "value": "fast"}]),
            "Invalid value for filter latencyMs with operator GREATER_THAN: expected a finite number, got 'fast'",
        ),
        (
            body(filters=[{"fieldName": "latencyMs", "operator": "BETWEEN", "value": [5, 1]}]),
            "low 5.0 is above high 1.0",
        ),
        (
            body(filters=[{"fieldName": "latencyMs", "operator": "BETWEEN", "value": 5}]),
            "expected [low, high]",
        ),
        (
            body(filters=[{"fieldName": "status", "operator": "EQUAL"}]),
            "Missing value for filter status with operator EQUAL",
        ),
        (
            body(filters=[{"fieldName": "status", "operator": "IS_NULL", "value": "yes"}]),
            "Invalid value for filter status with operator IS_NULL: expected true or false",
        ),
        (
            body(filters=[{"fieldName": "latencyMs", "operator": "EQUAL", "value": True}]),
            "expected a finite number, got True",
        ),
        (
            body(filters=[{"fieldName": "modelName", "operator": "EQUAL", "value": "x" * 1025}]),
            "longer than 1024 characters",
        ),
        (
            body(filters=[{"fieldName": "modelName", "operator": "IN", "value": ["a"] * 1001}]),
            "more than 1000 values",
        ),
        (
            body(dataSource="feedback", filters=[{"metadataKey": "team", "operator": "EQUAL", "value": "a"}]),
            "Unsupported filter name: metadata.team (the feedback source has no metadata)",
        ),
        (body(filters=[{"fieldName": "status", "operator": "EQUAL", "value": 1}] * 51), "filters: at most 50"),
    ],
)
def test_every_malformed_query_names_the_problem(payload: Any, expected: str) -> None:
    assert expected in refused(payload)


def test_hostile_names_are_refused_not_used() -> None:
    for name in ("latencyMs; DROP TABLE traces", "status')--", "`id`", "model\x00Name"):
        assert f"Unsupported filter name: {name}" in refused(
            body(filters=[{"fieldName": name, "operator": "EQUAL", "value": "x"}])
        )
        assert "Unsupported groupBy field" in refused(body(groupBy=[name]))
        assert "Unsupported aggregation column" in refused(body(aggregations=[{"type": "sum", "column": name}]))


def test_interval_grammar() -> None:
    assert parse_interval("5 minute") == Interval(5, "minute")
    assert parse_interval(" 2 Weeks ") == Interval(2, "week")
    assert parse_interval("1month") == Interval(1, "month")
    assert from_seconds(90) == Interval(90, "second")
    for bad in ("1.5 hour", "hour", "1 hour 30 minute", "1 h", "", "0 day"):
        with pytest.raises(IntervalError):
            parse_interval(bad)


@pytest.mark.parametrize(
    "interval",
    [
        Interval(1, "second"),
        Interval(90, "second"),
        Interval(7, "minute"),
        Interval(1, "hour"),
        Interval(3, "day"),
        Interval(1, "week"),
        Interval(2, "week"),
        Interval(1, "month"),
        Interval(5, "month"),
        Interval(2, "year"),
    ],
)
def test_buckets_tile_time_on_a_fixed_grid(interval: Interval) -> None:
    """Bucket k starts where k-1 ends; each time falls in the bucket whose start is at or before it."""
    at = datetime(2026, 11, 30, 13, 47, 12, 345000, tzinfo=UTC)
    index = interval.index_of(at)
    assert interval.start_of(index) <= at < interval.start_of(index + 1)
    assert interval.index_of(interval.start_of(index)) == index
    assert interval.index_of(interval.start_of(index + 1)) == index + 1
    if interval.unit == "week":
        assert interval.start_of(index).weekday() == 0  # Monday


def test_grid_alignment() -> None:
    assert Interval(1, "hour").on_grid(3_600_000) and Interval(1, "week").on_grid(3_600_000)
    assert Interval(1, "month").on_grid(3_600_000)
    assert Interval(90, "minute").on_grid(60_000) and not Interval(90, "minute").on_grid(3_600_000)
    assert not Interval(30, "second").on_grid(60_000)
