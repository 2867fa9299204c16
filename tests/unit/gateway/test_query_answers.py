"""From partial aggregates to data points (every aggregation type, rates per bucket length,
buckets clipped to the window, empty buckets filled), and the window of a newest-first page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from gateway.query.histogram import bucket_of
from gateway.query.partials import Partial, data_points, empty, finalize, iso_ms, merge
from gateway.query.request import parse_query
from gateway.query.sql import Columns
from gateway.trace_filters import TraceFilters, Where
from gateway.trace_window import Count, crossing, estimate, needed_hours, windows

AGGREGATIONS = [
    {"type": t, "column": "latencyMs"}
    for t in ("sum", "count", "min", "max", "avg", "p50", "rateSum", "rateAvg", "rateMin", "rateMax", "ratePerMinute")
] + [{"type": "sum", "column": "inputTokens"}, {"type": "max", "column": "inputTokens"}]


def timeseries(**fields: object) -> object:
    return parse_query(
        {
            "startTime": "2026-11-01T10:30:00Z",
            "endTime": "2026-11-01T13:15:00Z",
            "dataSource": "traces",
            "type": "timeseries",
            "interval": "1 hour",
            "aggregations": AGGREGATIONS,
            **fields,
        }
    )


def partial(columns: Columns, values: list[float], tokens: list[int]) -> Partial:
    stats: dict[str, object] = {}
    for alias, field, stat in columns.stats:
        data = values if field.name == "latencyMs" else tokens
        stats[alias] = {
            "count": len(data),
            "sum": int(Decimal(str(sum(data))) * 10**9),
            "min": float(min(data)),
            "max": float(max(data)),
            "bins": {bucket_of(v): 1 for v in data},
        }[stat]
    return Partial(len(values), stats)


def test_every_aggregation_of_a_bucket() -> None:
    query = timeseries()
    columns = Columns.of(query)
    part = partial(columns, [100.0, 200.0, 600.0], [10, 20, 30])
    row = finalize(query.aggregations, columns, part, 3600.0)
    assert row == {
        "total": 3,
        "sumLatencyMs": 900.0,
        "countLatencyMs": 3,
        "minLatencyMs": 100.0,
        "maxLatencyMs": 600.0,
        "avgLatencyMs": 300.0,
        "p50LatencyMs": pytest.approx(200.0, rel=0.01),
        "rateSumLatencyMs": 900.0 / 3600,
        "rateAvgLatencyMs": 300.0 / 3600,
        "rateMinLatencyMs": 100.0 / 3600,
        "rateMaxLatencyMs": 600.0 / 3600,
        "ratePerMinuteLatencyMs": 900.0 / 60,
        "sumInputTokens": 60,
        "maxInputTokens": 30,
    }
    assert isinstance(row["sumInputTokens"], int)


def test_buckets_are_clipped_to_the_window_and_empty_ones_filled() -> None:
    query = timeseries()
    columns = Columns.of(query)
    hour = query.interval.index_of(datetime(2026, 11, 1, 11, tzinfo=UTC))  # type: ignore[union-attr]
    points = data_points(query, columns, {(hour, ()): partial(columns, [100.0], [1])})
    assert [(p["startTimestamp"], p["endTimestamp"], p["total"]) for p in points] == [
        ("2026-11-01T10:30:00.000Z", "2026-11-01T11:00:00.000Z", 0),
        ("2026-11-01T11:00:00.000Z", "2026-11-01T12:00:00.000Z", 1),
        ("2026-11-01T12:00:00.000Z", "2026-11-01T13:00:00.000Z", 0),
        ("2026-11-01T13:00:00.000Z", "2026-11-01T13:15:00.000Z", 0),
    ]
    first = points[0]
    assert first["sumLatencyMs"] == 0.0 and first["countLatencyMs"] == 0 and first["avgLatencyMs"] is None
    assert first["p50LatencyMs"] is None and first["rateSumLatencyMs"] == 0.0 and first["rateMinLatencyMs"] is None
    # A rate is per second of the bucket as clipped: the last one lasts 15 minutes.
    last = data_points(query, columns, {(hour + 2, ()): partial(columns, [90.0], [1])})[-1]
    assert last["total"] == 1 and last["rateSumLatencyMs"] == pytest.approx(90.0 / 900)
    assert last["ratePerMinuteLatencyMs"] == pytest.approx(90.0 / 15)


def test_groups_get_every_bucket_and_absent_values_are_null() -> None:
    query = timeseries(groupBy=["modelName", "inputTokens"])
    columns = Columns.of(query)
    hour = query.interval.index_of(datetime(2026, 11, 1, 12, tzinfo=UTC))  # type: ignore[union-attr]
    points = data_points(query, columns, {(hour, (None, "7")): partial(columns, [1.0], [7])})
    assert len(points) == 4
    assert all(p["modelName"] is None and p["inputTokens"] == 7 for p in points)


def test_a_distribution_without_data_still_answers_its_row() -> None:
    query = parse_query(
        {
            "startTime": "2026-11-01T00:00:00Z",
            "endTime": "2026-11-02T00:00:00Z",
            "dataSource": "traces",
            "aggregations": [{"type": "sum", "column": "costInUSD"}, {"type": "p99", "column": "latencyMs"}],
        }
    )
    columns = Columns.of(query)
    assert data_points(query, columns, {}) == [{"total": 0, "sumCostInUSD": 0.0, "p99LatencyMs": None}]
    grouped = parse_query(
        {
            **{"startTime": "2026-11-01T00:00:00Z", "endTime": "2026-11-02T00:00:00Z"},
            "dataSource": "traces",
            "groupBy": ["status"],
        }
    )
    assert data_points(grouped, Columns.of(grouped), {}) == []


def test_partials_merge_like_the_engine() -> None:
    query = timeseries()
    columns = Columns.of(query)
    a, b = partial(columns, [100.0, 300.0], [1, 2]), partial(columns, [50.0], [9])
    merged = merge(columns, [a, b, empty(columns)])
    row = finalize(query.aggregations, columns, merged, 60.0)
    assert row["total"] == 3 and row["minLatencyMs"] == 50.0 and row["maxInputTokens"] == 9
    assert row["sumLatencyMs"] == 450.0 and row["countLatencyMs"] == 3


def test_iso_with_milliseconds() -> None:
    assert iso_ms(datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)) == "2026-01-02T03:04:05.678Z"


def test_a_page_reads_the_newest_time_that_holds_it() -> None:
    h = datetime(2026, 11, 30, 12, tzinfo=UTC)
    hour = timedelta(hours=1)
    hours = [Count(h - i * hour, hour, n) for i, n in enumerate([30, 15, 100, 5]) if n]
    assert crossing(hours, None, 20) == (hours[0], 20)
    assert crossing(hours, None, 31) == (hours[1], 1)  # all 30 of the newest hour, 1 of the next
    assert crossing(hours, None, 1_000) is None  # fewer in all: no lower bound
    assert crossing(hours, h - timedelta(minutes=30), 20) == (hours[2], 5)  # hours after a cursor do not count
    # Within a bucket: the share its count says, four times over, of the span up to the data's end.
    minute = Count(h + timedelta(minutes=39), timedelta(minutes=1), 600)
    assert estimate(minute, 30, h + timedelta(minutes=40)) == h + timedelta(minutes=39, seconds=48)
    assert estimate(minute, 300, h + timedelta(minutes=40)) == minute.start
    assert estimate(minute, 30, h + timedelta(minutes=39, seconds=30)) == h + timedelta(minutes=39, seconds=24)


def test_the_windows_tried_before_reading_without_a_bound() -> None:
    h = datetime(2026, 11, 30, 12, tzinfo=UTC)
    hour, minute = timedelta(hours=1), timedelta(minutes=1)
    hours = [Count(h, hour, 60_000), Count(h - hour, hour, 60_000)]
    # The newest hour's traffic stopped at 12:20 (a tenant gone quiet): its minutes say so.
    minutes = {h: [Count(h + m * minute, minute, 3_000) for m in range(19, -1, -1)]}
    exact = TraceFilters(Where(), Where(), True, None, None)
    assert needed_hours(hours, None, 51, exact) == [h]
    tried = windows(hours, minutes, None, 51, exact, now=h + timedelta(minutes=40))
    # The estimate within 12:19 (from its end: the data's end is later), 12:19 whole, the hour whole.
    assert tried == [h + timedelta(minutes=19, seconds=55.92), h + timedelta(minutes=19), h]
    # Loose filters (counts are upper bounds): 16 pages' worth too, before none at all.
    loose = TraceFilters(Where(), Where(), False, None, None)
    assert windows(hours, minutes, None, 4_000, loose, now=h)[-1] == h - hour
    assert needed_hours(hours, None, 4_000, loose) == [h - hour, h]
    bounded = TraceFilters(Where(), Where(), True, h + timedelta(minutes=19, seconds=58), None)
    assert windows(hours, minutes, None, 51, bounded, now=h) == []  # nothing narrower than 'from'
