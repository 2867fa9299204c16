"""Reading values back from the alerter's faust tables (their changelogs) strictly.

A changelog is replayed at every start: one value that cannot be decoded must not crash the
agent for every record of every tenant from then on (a ``float(None)`` from an overflowed sum
stored as ``null`` once did). The decoders of :mod:`alerter.windows`, :mod:`alerter.sketch`,
:mod:`alerter.anomalies` and the evaluator's meta and cooldown entries use these readers and
raise :class:`CorruptStateError` for anything that is not what they wrote; the evaluator drops
such an entry, counts it (``trulayer_alerter_state_dropped_total{table}``) and logs it.

Bounds kept on every value written, so that what is stored always decodes: counts are
non-negative integers, sums and baselines finite (:data:`MAX_MAGNITUDE`).
"""

from __future__ import annotations

import math
from typing import Any

# Largest magnitude of a stored sum or baseline: far above any real aggregate (a year of
# traces at the cost and latency bounds of the API stays below it), far below overflow.
MAX_MAGNITUDE = 1e15


class CorruptStateError(ValueError):
    """A stored value the alerter did not write (or wrote before a bound existed)."""


def finite(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CorruptStateError(f"{what}: not a number ({type(value).__name__})")
    number = float(value)
    if not math.isfinite(number) or abs(number) > MAX_MAGNITUDE:
        raise CorruptStateError(f"{what}: out of range ({number!r})")
    return number


def count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CorruptStateError(f"{what}: not a count ({type(value).__name__})")
    if not math.isfinite(value) or value < 0 or value != int(value) or value > MAX_MAGNITUDE:
        raise CorruptStateError(f"{what}: not a count ({value!r})")
    return int(value)


def mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CorruptStateError(f"{what}: not an object ({type(value).__name__})")
    return value


def bounded(value: float) -> float:
    """A sum or statistic kept within :data:`MAX_MAGNITUDE` (and finite) when it is written."""
    if not math.isfinite(value):
        return MAX_MAGNITUDE if value > 0 else -MAX_MAGNITUDE
    return max(-MAX_MAGNITUDE, min(MAX_MAGNITUDE, value))
