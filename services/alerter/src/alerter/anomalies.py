"""EWMA baselines and the anomaly decision, per project and metric (pure logic).

Each closed anomaly bucket yields one sample per metric (p95 latency, error rate, volume). A
baseline keeps the exponentially weighted mean and variance of the samples; after
``warmup`` samples a new sample is scored ``z = (x - mean) / std`` before it joins the
baseline. Latency and error rate flag upward moves only; volume flags both directions.
The standard deviation is floored (5 % of the mean, and an absolute minimum) so that a
perfectly flat history does not turn the first wiggle into an infinite z-score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from alerter.stored import bounded, count, finite, mapping

AnomalyType = Literal["latency_spike", "error_rate_spike", "volume_anomaly"]
ANOMALY_METRICS: dict[str, AnomalyType] = {
    "latency_p95": "latency_spike",
    "error_rate": "error_rate_spike",
    "volume": "volume_anomaly",
}
_RELATIVE_STD_FLOOR = 0.05
_ABSOLUTE_STD_FLOOR = {"latency_p95": 1.0, "error_rate": 1.0, "volume": 1.0}


@dataclass
class Baseline:
    mean: float = 0.0
    var: float = 0.0
    n: int = 0

    def std(self, metric: str) -> float:
        floor = max(_RELATIVE_STD_FLOOR * abs(self.mean), _ABSOLUTE_STD_FLOOR.get(metric, 1.0))
        return max(math.sqrt(max(self.var, 0.0)), floor)

    def update(self, x: float, alpha: float) -> None:
        """Fold ``x`` in; mean and variance stay finite (bounded) whatever the samples."""
        if self.n == 0:
            self.mean, self.var = bounded(x), 0.0
        else:
            # West's incremental EWMA variance.
            diff = x - self.mean
            incr = alpha * diff
            self.mean = bounded(self.mean + incr)
            self.var = max(bounded((1 - alpha) * (self.var + diff * incr)), 0.0)
        self.n += 1

    def to_json(self) -> dict[str, Any]:
        return {"m": self.mean, "v": self.var, "n": self.n}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Baseline:
        """The baseline as :meth:`to_json` wrote it; ``CorruptStateError`` for anything else
        (a ``null`` left by an overflow, a missing field)."""
        if not data:
            return cls()
        data = mapping(data, "baseline")
        return cls(
            mean=finite(data.get("m"), "baseline mean"),
            var=finite(data.get("v"), "baseline variance"),
            n=count(data.get("n"), "baseline n"),
        )


@dataclass(frozen=True)
class AnomalyVerdict:
    type: AnomalyType
    metric: str
    observed: float
    mean: float
    std: float
    z_score: float
    severity: str


def severity_of(z: float) -> str:
    distance = abs(z)
    if distance >= 10:
        return "critical"
    if distance >= 6:
        return "high"
    if distance >= 4:
        return "medium"
    return "low"


def observe(
    baseline: Baseline, metric: str, x: float, *, alpha: float, warmup: int, z_threshold: float
) -> AnomalyVerdict | None:
    """Score ``x`` against the baseline, then fold it in. Returns the anomaly, if any."""
    verdict: AnomalyVerdict | None = None
    if baseline.n >= warmup:
        std = baseline.std(metric)
        z = (x - baseline.mean) / std
        upward_only = metric != "volume"
        if z >= z_threshold or (not upward_only and z <= -z_threshold):
            verdict = AnomalyVerdict(ANOMALY_METRICS[metric], metric, x, baseline.mean, std, z, severity_of(z))
    baseline.update(x, alpha)
    return verdict
