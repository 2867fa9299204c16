"""The log-bucketed histogram behind every percentile: a DDSketch without collapsing.

A value ``x > 0`` falls in bucket ``ceil(log(x) / log(γ))`` with ``γ = (1 + α) / (1 − α)``; zero
falls in :data:`ZERO_BUCKET`. Bucket ``i`` is read back as ``2γ^i / (γ + 1)``, within a relative
``α`` of every value in it, so a quantile read from the histogram is within ``α`` (1 %) of the
true value of that rank. Histograms are maps bucket → count: they add (rollup rows merge with
``sumMap``) and subtract exactly, so a percentile served from rollups equals the one computed
from raw rows. The same bucket expression is in the rollups' views (migration 0008); a unit
test holds the two equal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

ALPHA = 0.01
GAMMA = (1 + ALPHA) / (1 - ALPHA)
ZERO_BUCKET = -2147483648
_LOG_GAMMA = math.log(GAMMA)


def bucket_sql(value: str, as_float: str | None = None) -> str:
    """The bucket of a non-null, non-negative SQL expression ``value`` (``as_float``: the same
    value as a Float64, when ``value`` is not one)."""
    number = as_float or value
    return f"if({value} > 0, toInt32(ceil(log({number}) / log(1.01 / 0.99))), toInt32({ZERO_BUCKET}))"


def histogram_sql(value: str, *, nullable: bool, integer: bool = False) -> str:
    """The one-value histogram of a row (``Map(Int32, UInt64)``; empty for NULL), for ``sumMap``.
    ``integer``: ``value`` is an integer column."""
    if not nullable:
        return f"map({bucket_sql(value, f'toFloat64({value})' if integer else None)}, toUInt64(1))"
    inner = f"assumeNotNull({value})"
    return f"if({value} IS NULL, CAST(map(), 'Map(Int32, UInt64)'), map({bucket_sql(inner)}, toUInt64(1)))"


def bucket_of(value: float) -> int:
    """The bucket of ``value`` as Python computes it (tests; the engine computes the stored ones)."""
    return ZERO_BUCKET if value <= 0 else math.ceil(math.log(value) / _LOG_GAMMA)


def bucket_value(bucket: int) -> float:
    """The value a bucket stands for: within ``α`` of anything in it."""
    if bucket == ZERO_BUCKET:
        return 0.0
    return 2 * GAMMA**bucket / (GAMMA + 1)


def rank(q: float, n: int) -> int:
    """The 0-based rank a quantile ``q`` of ``n`` values reads (``0.29 × 100`` is 29, not 28)."""
    return math.floor(q * (n - 1) + 1e-9)


def quantile(
    histogram: Mapping[int, int], q: float, low: float | None = None, high: float | None = None
) -> float | None:
    """The value of rank ``floor(q·(n−1))`` (0-based, ascending), within ``α``; None when empty.

    ``low``/``high``: the exact min and max of the values, when known: the lowest and highest
    ranks are then exact, and an estimate never leaves ``[low, high]`` (which only brings it
    closer to the true value). Counts may come from a subtraction (a group with the total minus
    the other groups): buckets with a count of zero or less are skipped."""
    counts = sorted((bucket, count) for bucket, count in histogram.items() if count > 0)
    total = sum(count for _, count in counts)
    if total == 0:
        return None
    target = rank(q, total)
    if target == 0 and low is not None:
        return low
    if target == total - 1 and high is not None:
        return high
    estimate = bucket_value(counts[-1][0])
    seen = 0
    for bucket, count in counts:
        seen += count
        if seen > target:
            estimate = bucket_value(bucket)
            break
    if low is not None:
        estimate = max(estimate, low)
    if high is not None:
        estimate = min(estimate, high)
    return estimate
