"""A mergeable quantile sketch with relative-error guarantees (the DDSketch idea, kept small).

A value ``x > 0`` falls in bucket ``ceil(log_gamma(x))`` with ``gamma = (1 + a) / (1 - a)``;
any quantile read back is within ``a`` (relative) of the true one. Two sketches merge by
adding bucket counts, which is what lets the alerter keep small per-bucket sketches and answer
p95 over any window by merging the buckets inside it. Values ≤ ``MIN_VALUE`` share one bucket
(latencies of 0 ms are real), values above ``MAX_VALUE`` share the top bucket (so every bucket
index, and every quantile read back, stays finite). Serialises to plain JSON for the faust
changelog; :meth:`LogSketch.from_json` refuses what it did not write (``CorruptStateError``).
"""

from __future__ import annotations

import math
from typing import Any

from alerter.stored import CorruptStateError, count, mapping

RELATIVE_ACCURACY = 0.01
MIN_VALUE = 1e-3
_GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_LOG_GAMMA = math.log(_GAMMA)
MAX_VALUE = 1e12  # far above any latency in ms the API accepts (7 days = 6.048e8)
_MAX_INDEX = math.ceil(math.log(MAX_VALUE) / _LOG_GAMMA)
_MIN_INDEX = math.ceil(math.log(MIN_VALUE) / _LOG_GAMMA)
_ZERO = "z"


class LogSketch:
    __slots__ = ("bins", "count", "zeros")

    def __init__(self) -> None:
        self.bins: dict[int, int] = {}
        self.zeros = 0
        self.count = 0

    def add(self, value: float, weight: int = 1) -> None:
        if not math.isfinite(value) or value < 0:
            return
        if value <= MIN_VALUE:
            self.zeros += weight
        else:
            index = math.ceil(math.log(min(value, MAX_VALUE)) / _LOG_GAMMA)
            self.bins[index] = self.bins.get(index, 0) + weight
        self.count += weight

    def copy(self) -> LogSketch:
        twin = LogSketch()
        twin.bins = dict(self.bins)
        twin.zeros = self.zeros
        twin.count = self.count
        return twin

    def merge(self, other: LogSketch) -> None:
        for index, n in other.bins.items():
            self.bins[index] = self.bins.get(index, 0) + n
        self.zeros += other.zeros
        self.count += other.count

    def quantile(self, q: float) -> float | None:
        """The ``q``-quantile (0 ≤ q ≤ 1) within the relative accuracy; None when empty."""
        if self.count == 0:
            return None
        rank = q * (self.count - 1)
        seen = self.zeros
        if rank < seen:
            return 0.0
        for index in sorted(self.bins):
            seen += self.bins[index]
            if rank < seen:
                # The bucket's representative value: relative error ≤ RELATIVE_ACCURACY.
                return 2 * _GAMMA**index / (_GAMMA + 1)
        return 2 * _GAMMA ** max(self.bins) / (_GAMMA + 1)

    def to_json(self) -> dict[str, Any]:
        return {_ZERO: self.zeros, "b": {str(k): v for k, v in self.bins.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> LogSketch:
        sketch = cls()
        if not data:
            return sketch
        data = mapping(data, "sketch")
        sketch.zeros = count(data.get(_ZERO, 0), "sketch zeros")
        for key, n in mapping(data.get("b") or {}, "sketch bins").items():
            try:
                index = int(key)
            except ValueError:
                raise CorruptStateError(f"sketch bin {key!r}: not an index") from None
            if not _MIN_INDEX <= index <= _MAX_INDEX:
                raise CorruptStateError(f"sketch bin {index}: out of range")
            sketch.bins[index] = count(n, "sketch bin count")
        sketch.count = sketch.zeros + sum(sketch.bins.values())
        return sketch
