from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from alerter.sketch import RELATIVE_ACCURACY, LogSketch
from alerter.windows import BucketAgg, breaches, in_cooldown, metric_value, window_buckets
from trulayer_common.config.entities import AlertRule


def exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


@pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
def test_sketch_quantiles_within_relative_accuracy_and_merge(q: float) -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(5, 1) for _ in range(20_000)]
    whole, left, right = LogSketch(), LogSketch(), LogSketch()
    for i, v in enumerate(values):
        whole.add(v)
        (left if i % 2 else right).add(v)
    left.merge(LogSketch.from_json(right.to_json()))  # merged through the changelog form
    for sketch in (whole, left):
        got = sketch.quantile(q)
        assert got == pytest.approx(exact(values, q), rel=RELATIVE_ACCURACY * 1.01)


def test_sketch_zero_and_empty() -> None:
    sketch = LogSketch()
    assert sketch.quantile(0.5) is None
    sketch.add(0)
    sketch.add(-1)  # ignored
    assert sketch.count == 1 and sketch.quantile(0.99) == 0.0


def rule(**fields: object) -> AlertRule:
    base: dict[str, object] = {"id": "r", "tenant_id": "t", "metric": "error_rate", "operator": "gt", "threshold": 1}
    return AlertRule(created_at=datetime.now(UTC), **{**base, **fields})  # type: ignore[arg-type]


def test_metric_values() -> None:
    agg = BucketAgg()
    for latency, err, cost in [(100, 0, 0.1), (200, 1, 0.3), (300, 0, None), (400, 1, 0.2)]:
        agg.add_point(latency, err, cost)
    agg.add_score("hallucination", 0.2)
    agg.add_score("hallucination", 0.4)
    agg.add_score("relevance", 0.9)
    agg = BucketAgg.from_json(agg.to_json())
    assert metric_value(rule(metric="error_rate"), agg) == 50.0
    assert metric_value(rule(metric="volume"), agg) == 4.0
    assert metric_value(rule(metric="total_cost"), agg) == pytest.approx(0.6)
    assert metric_value(rule(metric="cost_per_call"), agg) == pytest.approx(0.15)
    assert metric_value(rule(metric="latency_p50"), agg) == pytest.approx(200, rel=0.01)
    assert metric_value(rule(metric="hallucination_score"), agg) == pytest.approx(0.3)
    assert metric_value(rule(metric="eval_score", metric_name="relevance"), agg) == pytest.approx(0.9)
    assert metric_value(rule(metric="eval_score", metric_name="missing"), agg) is None
    assert metric_value(rule(metric="error_rate"), BucketAgg()) is None


def test_operators_cooldown_and_window_buckets() -> None:
    assert breaches("gt", 2, 1) and not breaches("gt", 1, 1)
    assert breaches("gte", 1, 1) and breaches("lt", 0, 1) and breaches("lte", 1, 1) and not breaches("lt", 1, 1)
    with pytest.raises(ValueError, match="operator"):
        breaches("eq", 1, 1)
    assert not in_cooldown(None, 100, 5)
    assert in_cooldown(100, 399, 5) and not in_cooldown(100, 400, 5)
    assert list(window_buckets(100, 20, 5)) == [80, 85, 90, 95, 100]
