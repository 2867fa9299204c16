"""Per-bucket aggregates and the window statistics merged from them.

State is kept in fixed event-time buckets of ``bucket_secs`` per tenant × project (× model):
count, errors, cost, a latency :class:`LogSketch` and per-metric score sums. Every aggregate is
mergeable, so a rule's window of any ``window_secs`` is the merge of the buckets it covers:
``[watermark - window_secs, watermark]`` rounded outwards to whole buckets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from alerter.sketch import LogSketch
from alerter.stored import CorruptStateError, bounded, count, finite, mapping
from trulayer_common.config.entities import AlertRule

HALLUCINATION_METRIC = "hallucination"


@dataclass
class BucketAgg:
    count: int = 0
    errors: int = 0
    cost: float = 0.0
    latency: LogSketch = field(default_factory=LogSketch)
    scores: dict[str, list[float]] = field(default_factory=dict)  # metric → [sum, n]

    def add_point(self, latency_ms: float | None, is_error: int, cost: float | None) -> None:
        """Non-finite or negative values are not counted (the gateway refuses them; this keeps
        whatever else produced a record from overflowing the stored sums)."""
        self.count += 1
        self.errors += 1 if is_error else 0
        if isinstance(cost, int | float) and math.isfinite(cost) and cost >= 0:
            self.cost = bounded(self.cost + cost)
        if isinstance(latency_ms, int | float):
            self.latency.add(latency_ms)

    def add_score(self, metric: str, score: float) -> None:
        if not isinstance(score, int | float) or not math.isfinite(score):
            return
        total = self.scores.setdefault(metric, [0.0, 0.0])
        total[0] = bounded(total[0] + score)
        total[1] += 1

    def merge(self, other: BucketAgg) -> None:
        self.count += other.count
        self.errors += other.errors
        self.cost = bounded(self.cost + other.cost)
        self.latency.merge(other.latency)
        for metric, (total, n) in other.scores.items():
            mine = self.scores.setdefault(metric, [0.0, 0.0])
            mine[0] = bounded(mine[0] + total)
            mine[1] += n

    def copy(self) -> BucketAgg:
        return BucketAgg(
            self.count, self.errors, self.cost, self.latency.copy(), {k: list(v) for k, v in self.scores.items()}
        )

    def to_json(self) -> dict[str, Any]:
        return {"c": self.count, "e": self.errors, "$": self.cost, "l": self.latency.to_json(), "s": self.scores}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> BucketAgg:
        """The bucket as :meth:`to_json` wrote it; ``CorruptStateError`` for anything else."""
        if not data:
            return cls()
        data = mapping(data, "bucket")
        scores: dict[str, list[float]] = {}
        for metric, pair in mapping(data.get("s") or {}, "bucket scores").items():
            if not isinstance(pair, list) or len(pair) != 2:
                raise CorruptStateError(f"bucket score {metric!r}: not a [sum, n] pair")
            scores[metric] = [finite(pair[0], "score sum"), float(count(pair[1], "score n"))]
        return cls(
            count=count(data.get("c", 0), "bucket count"),
            errors=count(data.get("e", 0), "bucket errors"),
            cost=finite(data.get("$", 0.0), "bucket cost"),
            latency=LogSketch.from_json(data.get("l")),
            scores=scores,
        )


def bucket_start(ts: float, bucket_secs: int) -> int:
    return int(ts // bucket_secs) * bucket_secs


def window_buckets(watermark: float, window_secs: int, bucket_secs: int) -> range:
    """Starts of the buckets covering ``[watermark - window_secs, watermark]``."""
    first = bucket_start(watermark - window_secs, bucket_secs)
    last = bucket_start(watermark, bucket_secs)
    return range(first, last + bucket_secs, bucket_secs)


def metric_value(rule: AlertRule, window: BucketAgg) -> float | None:
    """The rule's metric over the merged window; None when the window holds no data for it.

    ``error_rate`` is a percentage (0–100), as in ``GET /v1/metrics``; latencies are in ms;
    costs in the traces' currency; scores are averages of the evaluations' 0..1 scores.
    """
    metric = rule.metric
    if metric in ("hallucination_score", "eval_score"):
        name = rule.metric_name or (HALLUCINATION_METRIC if metric == "hallucination_score" else None)
        total = window.scores.get(name) if name else None
        return total[0] / total[1] if total and total[1] else None
    if window.count == 0:
        return None
    if metric == "error_rate":
        return 100.0 * window.errors / window.count
    if metric == "volume":
        return float(window.count)
    if metric == "total_cost":
        return window.cost
    if metric == "cost_per_call":
        return window.cost / window.count
    quantile = {"latency_p50": 0.5, "latency_p95": 0.95, "latency_p99": 0.99}[metric]
    return window.latency.quantile(quantile)


def breaches(operator: str, value: float, threshold: float) -> bool:
    if operator == "gt":
        return value > threshold
    if operator == "gte":
        return value >= threshold
    if operator == "lt":
        return value < threshold
    if operator == "lte":
        return value <= threshold
    raise ValueError(f"unknown operator {operator!r}")


def in_cooldown(last_fired: float | None, now: float, cooldown_minutes: float) -> bool:
    """Cooldown counts in event time, like the windows: replays decide the same way."""
    return last_fired is not None and now < last_fired + cooldown_minutes * 60.0
