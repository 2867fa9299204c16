"""The percentile histogram (within 1 %, exact ends, subtraction), the time plan (segments cover
a window exactly once, tiers only where rows fit), when rollups may answer, and the SQL: every
value the caller sent is a bound parameter, never text of the statement."""

from __future__ import annotations

import itertools
import random
import re
from datetime import UTC, datetime, timedelta

import pytest

from gateway.query.histogram import ALPHA, ZERO_BUCKET, bucket_of, bucket_value, histogram_sql, quantile, rank
from gateway.query.plan import METADATA_SETTLING, Segment, choose, matches_absent, segments
from gateway.query.request import PERCENTILES, Filter, Target, parse_query
from gateway.query.sql import QuerySql
from trulayer_common.clickhouse.migrations import load_migrations

T0 = datetime(2026, 11, 1, 10, 17, 23, 456000, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def histogram(values: list[float]) -> dict[int, int]:
    out: dict[int, int] = {}
    for value in values:
        out[bucket_of(value)] = out.get(bucket_of(value), 0) + 1
    return out


@pytest.mark.parametrize("seed", range(5))
def test_quantiles_are_within_the_stated_error(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(6, 1.5) for _ in range(rng.randint(1, 3000))] + [0.0] * rng.randint(0, 5)
    ordered = sorted(values)
    bins = histogram(values)
    for q in PERCENTILES.values():
        true = ordered[rank(q, len(values))]
        for low, high in ((None, None), (ordered[0], ordered[-1])):
            estimate = quantile(bins, q, low, high)
            assert estimate is not None
            assert abs(estimate - true) <= ALPHA * true + 1e-12, (q, estimate, true)


def test_the_ends_are_exact_with_min_and_max_and_one_value_is_itself() -> None:
    bins = histogram([3.0, 100.0, 250.0])
    assert quantile(bins, 0.05, 3.0, 250.0) == 3.0
    assert quantile(bins, 1.0, 3.0, 250.0) == 250.0
    assert quantile(histogram([100.0]), 0.5, 100.0, 100.0) == 100.0
    assert quantile({}, 0.5) is None
    assert bucket_value(ZERO_BUCKET) == 0.0 and quantile(histogram([0.0, 0.0]), 0.5) == 0.0


def test_a_subtracted_histogram_is_the_histogram_of_the_rest() -> None:
    everything, some = histogram([1.0, 2.0, 3.0, 500.0]), histogram([1.0, 3.0])
    rest = {b: everything.get(b, 0) - some.get(b, 0) for b in everything}
    assert quantile(rest, 0.0) == pytest.approx(2.0, rel=ALPHA)
    assert quantile(rest, 1.0) == pytest.approx(500.0, rel=ALPHA)


def test_ranks_do_not_fall_short_by_rounding() -> None:
    assert rank(0.29, 101) == 29 and rank(0.95, 101) == 95 and rank(0.5, 1) == 0


def test_the_rollup_views_bucket_values_as_the_read_layer_does() -> None:
    """Histograms from rollups and from raw rows add up only if both bucket alike."""
    (statements,) = [s for v, _, s in load_migrations() if v == 8]
    views = "\n".join(s for s in statements if "MATERIALIZED VIEW" in s)
    for column, nullable in (("latency_ms", True), ("cost", True), ("prompt_tokens", False), ("total_tokens", False)):
        assert histogram_sql(column, nullable=nullable, integer=not nullable) in views, column
    (health,) = [s for v, _, s in load_migrations() if v == 9]
    lag = "greatest(toFloat64(dateDiff('millisecond', created_at, now64(3))), 0)"
    assert histogram_sql(lag, nullable=False) in "\n".join(health)


def covered(parts: list[Segment]) -> list[tuple[datetime, datetime]]:
    return [(s.start, s.end) for s in parts]


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (T0, T0 + timedelta(days=7)),
        (T0, T0 + timedelta(minutes=30)),
        (T0, T0 + timedelta(seconds=20)),
        (
            T0.replace(minute=0, second=0, microsecond=0),
            T0.replace(minute=0, second=0, microsecond=0) + timedelta(hours=3),
        ),
    ],
)
def test_segments_cover_the_window_once_in_order(start: datetime, end: datetime) -> None:
    for hour, minute in ((True, True), (False, True), (True, False), (False, False)):
        parts = segments(start, end, hour=hour, minute=minute)
        spans = covered(parts)
        assert spans[0][0] == start and spans[-1][1] == end
        assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
        for part in parts:
            step = {"hour": timedelta(hours=1), "minute": timedelta(minutes=1)}.get(part.tier)
            if step is not None:  # rollup rows fit whole
                assert (part.start - EPOCH) % step == timedelta(0) and (part.end - EPOCH) % step == timedelta(0)
            assert part.tier != "hour" or hour
            assert part.tier != "minute" or minute


def query(**fields: object) -> object:
    base = {"startTime": "2026-11-01T10:17:23.456Z", "endTime": "2026-11-08T10:00:00Z", "dataSource": "traces"}
    return parse_query({**base, **fields})


def tiers(plan: object) -> set[str]:
    return {s.tier for s in plan.segments}  # type: ignore[attr-defined]


def test_rollups_answer_dimension_queries_and_raw_the_rest() -> None:
    dims = query(
        groupBy=["modelName", "status"],
        aggregations=[{"type": "p99", "column": "latencyMs"}],
        filters=[{"fieldName": "projectId", "operator": "IN", "value": ["p1"]}],
    )
    assert tiers(choose(dims, {})) == {"raw", "minute", "hour"}
    assert tiers(choose(query(type="timeseries", interval="1 hour"), {})) == {"raw", "minute", "hour"}
    assert tiers(choose(query(type="timeseries", interval="5 minute"), {})) == {"raw", "minute"}
    short = {"endTime": "2026-11-01T12:00:00Z"}
    assert tiers(choose(query(type="timeseries", interval="30 second", **short), {})) == {"raw"}
    for raw in (
        query(groupBy=["name"]),
        query(filters=[{"fieldName": "latencyMs", "operator": "GREATER_THAN", "value": 5}]),
        query(aggregations=[{"type": "countDistinct", "column": "traceId"}]),
        query(groupBy=["metadata.user_id"]),
        query(groupBy=["metadata.team"], filters=[{"metadataKey": "env", "operator": "EQUAL", "value": "x"}]),
        query(dataSource="spans"),
    ):
        assert tiers(choose(raw, {"team": EPOCH, "env": EPOCH})) == {"raw"}


def test_metadata_keys_use_the_hourly_metadata_rollup_once_complete() -> None:
    by_team = query(groupBy=["metadata.team"], aggregations=[{"type": "p95", "column": "latencyMs"}])
    plan = choose(by_team, {"team": EPOCH})
    assert plan.metadata_key == "team" and plan.absent_included and tiers(plan) == {"raw", "minute", "hour"}
    # min/max of the traces without the key cannot be subtracted: read raw.
    with_min = query(groupBy=["metadata.team"], aggregations=[{"type": "min", "column": "latencyMs"}])
    assert choose(with_min, {"team": EPOCH}).raw_only
    # A filter that keeps only traces with the key needs no subtraction; min is fine then.
    only = query(
        filters=[{"metadataKey": "team", "operator": "EQUAL", "value": "a"}],
        aggregations=[{"type": "min", "column": "latencyMs"}],
    )
    assert not choose(only, {"team": EPOCH}).absent_included and not choose(only, {"team": EPOCH}).raw_only
    # A key declared during the window: raw until a settling time after.
    declared = datetime(2026, 11, 3, 0, 30, tzinfo=UTC)
    plan = choose(by_team, {"team": declared})
    first_rollup = min(s.start for s in plan.segments if s.tier == "hour")
    assert first_rollup >= declared + METADATA_SETTLING
    assert all(s.tier == "raw" for s in plan.segments if s.end <= declared + METADATA_SETTLING)


def test_which_metadata_filters_keep_traces_without_the_key() -> None:
    def f(op: str, value: object) -> Filter:
        return Filter(Target("metadata.k", metadata_key="k"), op, value)

    assert matches_absent(f("NOT_EQUAL", "a")) and matches_absent(f("NOT_IN", ("a",)))
    assert matches_absent(f("STRING_NOT_CONTAINS", "a")) and matches_absent(f("IS_NULL", True))
    assert not matches_absent(f("EQUAL", "a")) and not matches_absent(f("IN", ("a",)))
    assert not matches_absent(f("STRING_STARTS_WITH", "a")) and not matches_absent(f("IS_NULL", False))
    assert matches_absent(f("EQUAL", "")) and matches_absent(f("IN", ("a", "")))


HOSTILE = ["x'; DROP TABLE traces; --", "\\' OR 1=1 --", "{p9:String}x", "') UNION SELECT * FROM system.users --"]


def test_values_and_metadata_keys_are_bound_never_spliced() -> None:
    for value in HOSTILE:
        for metadata in ({"team": EPOCH}, {}):
            parsed = query(
                type="timeseries",
                interval="1 hour",
                groupBy=["modelName", f"metadata.{value}"],
                filters=[
                    {"fieldName": "modelName", "operator": "IN", "value": [value]},
                    {"metadataKey": value, "operator": "STRING_CONTAINS", "value": value},
                    {"fieldName": "status", "operator": "NOT_EQUAL", "value": value},
                ],
                aggregations=[{"type": "p50", "column": "latencyMs"}],
            )
            statement = QuerySql(parsed, choose(parsed, metadata), "tenant'; --", "trulayer").statement()
            assert value not in statement.sql and "tenant'" not in statement.sql
            assert value in statement.params.values() or [value] in statement.params.values()
            # Every placeholder names a bound parameter.
            assert set(re.findall(r"\{(p\d+):", statement.sql)) <= set(statement.params)
