"""Timeseries intervals and their buckets.

An interval is ``"<n> <unit>"`` (unit second … year, plural allowed; one term only) or, through
the deprecated ``intervalInSeconds``, a number of seconds. Buckets are aligned on a fixed grid,
not on the query's start: seconds to days from the Unix epoch, weeks from Monday 1970-01-05,
months and years from January 1970 (all UTC). The same query window therefore always gets the
same buckets, and a bucket of an hour or more is made of whole rollup hours. The first and last
bucket of a window are clipped to it: a bucket's ``startTimestamp`` is never before
``startTime`` and its ``endTimestamp`` never after ``endTime``.

:func:`index_sql` (the engine) and :func:`index_of` (Python) compute the same bucket index.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_UNIT_MS = {"second": 1_000, "minute": 60_000, "hour": 3_600_000, "day": 86_400_000, "week": 7 * 86_400_000}
_WEEK_ORIGIN_MS = 4 * 86_400_000  # Monday 1970-01-05
_TEXT = re.compile(r"^\s*([0-9]+)\s*(second|minute|hour|day|week|month|year)s?\s*$", re.IGNORECASE)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_COUNT = 10**9
# Windows lie within 1970..2100: a longer bucket than 200 years means nothing (and would not fit
# a datetime).
MAX_MONTHS = 200 * 12
MAX_MS = 200 * 366 * 86_400_000


class IntervalError(ValueError):
    """Not an interval this API accepts (the message says why)."""


@dataclass(frozen=True)
class Interval:
    count: int
    unit: str

    @property
    def fixed_ms(self) -> int | None:
        """The length in milliseconds; None for months and years (calendar lengths)."""
        unit_ms = _UNIT_MS.get(self.unit)
        return None if unit_ms is None else unit_ms * self.count

    @property
    def months(self) -> int:
        return self.count * (12 if self.unit == "year" else 1)

    @property
    def _origin_ms(self) -> int:
        return _WEEK_ORIGIN_MS if self.unit == "week" else 0

    def on_grid(self, grid_ms: int) -> bool:
        """Whether every bucket boundary is a multiple of ``grid_ms`` (a minute, an hour)."""
        fixed = self.fixed_ms
        if fixed is None:
            return True  # month starts are midnight
        return fixed % grid_ms == 0 and self._origin_ms % grid_ms == 0

    def index_of(self, at: datetime) -> int:
        fixed = self.fixed_ms
        if fixed is not None:
            ms = (at - _EPOCH) // timedelta(milliseconds=1)
            return (ms - self._origin_ms) // fixed
        return ((at.year - 1970) * 12 + at.month - 1) // self.months

    def start_of(self, index: int) -> datetime:
        fixed = self.fixed_ms
        if fixed is not None:
            return _EPOCH + timedelta(milliseconds=index * fixed + self._origin_ms)
        month = index * self.months
        return datetime(1970 + month // 12, month % 12 + 1, 1, tzinfo=UTC)

    def index_sql(self, time_expr: str, ms_expr: str) -> str:
        """The bucket index of a row; ``ms_expr`` is ``time_expr`` in Unix milliseconds (Int64)."""
        fixed = self.fixed_ms
        if fixed is not None:
            # intDiv truncates toward zero: shift by one bucket so the dividend is never negative.
            return f"(intDiv({ms_expr} - {self._origin_ms} + {fixed}, {fixed}) - 1)"
        return f"intDiv((toYear({time_expr}) - 1970) * 12 + toMonth({time_expr}) - 1, {self.months})"

    def __str__(self) -> str:
        return f"{self.count} {self.unit}{'s' if self.count != 1 else ''}"


def parse_interval(text: object) -> Interval:
    if not isinstance(text, str):
        raise IntervalError("interval must be a string like '1 hour'")
    match = _TEXT.match(text)
    if match is None:
        raise IntervalError(
            f"Invalid interval: {text!r}: expected '<positive integer> <unit>' with unit second, minute, hour, day, "
            "week, month or year (one term: '1 hour 30 minute' is not accepted)"
        )
    count = int(match.group(1))
    if not 0 < count <= MAX_COUNT:
        raise IntervalError(f"Invalid interval: {text!r}: the count must be a positive integer")
    return _bounded(Interval(count, match.group(2).lower()), repr(text))


def _bounded(interval: Interval, given: str) -> Interval:
    fixed = interval.fixed_ms
    if (fixed is not None and fixed > MAX_MS) or (fixed is None and interval.months > MAX_MONTHS):
        raise IntervalError(f"Invalid interval: {given}: longer than 200 years")
    return interval


def from_seconds(value: object) -> Interval:
    if isinstance(value, bool) or not isinstance(value, int):
        raise IntervalError("intervalInSeconds must be a positive integer")
    if not 0 < value <= MAX_COUNT:
        raise IntervalError(f"Invalid intervalInSeconds: {value}: must be a positive integer")
    return _bounded(Interval(value, "second"), str(value))
