"""Newest-first pages of traces without sorting a tenant's whole history.

A page (``GET /v1/traces``, and each chunk of the export) is the newest ``limit`` traces before
an upper bound. Sorting every matching trace to keep 50 costs a read of all of them (0.5–2 s
at 10 million traces). Instead the rollups say how many traces each hour holds
(:func:`hour_counts`, one small read), and each minute of the hour where the page ends
(:func:`minute_counts`), and the page reads only the newest time that holds enough of them
(:func:`windows`: the newest whole hours and minutes, and within the oldest minute it needs the
part that should hold them if spread evenly, with a margin), with ``FINAL`` over that window
only. When the filters are not all rollup dimensions the counts are upper bounds, so a window
may hold too few matches: the caller then widens it (the whole minute, the whole hour, 16 pages'
worth), last to no lower bound at all, which is always right. Pure apart from the two reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.trace_filters import TraceFilters
from trulayer_common.clickhouse import ClickHouse

HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
# Within a minute, read this many times the span its traces would need if spread evenly.
MARGIN = 4
# Factors of the page size the window is sized for, tried in turn; then no lower bound.
EXACT = (1,)
WIDENING = (1, 16)


@dataclass(frozen=True)
class Count:
    """Traces in ``[start, start + span)``."""

    start: datetime
    span: timedelta
    traces: int


async def _counts(
    ch: ClickHouse, filters: TraceFilters, table: str, span: timedelta, clauses: list[str], params: dict[str, Any]
) -> list[Count]:
    where = [filters.rollup.sql(), *clauses]
    rows = await ch.query(
        f"SELECT bucket, toInt64(sum(traces)) AS n FROM {ch.database}.{table} "
        f"WHERE {' AND '.join(where)} GROUP BY bucket HAVING n > 0 ORDER BY bucket DESC",
        {**filters.rollup.params, **params},
    )
    return [Count(r["bucket"].replace(tzinfo=UTC), span, int(r["n"])) for r in rows]


async def hour_counts(
    ch: ClickHouse, filters: TraceFilters, upper: datetime | None, lower: datetime | None
) -> list[Count]:
    """Traces per hour (newest first) of the tenant under the filters' rollup dimensions, in
    ``[floor(lower), upper]`` by hour."""
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if upper is not None:
        clauses.append("bucket <= toStartOfHour({w_upper:DateTime64(3, 'UTC')})")
        params["w_upper"] = upper
    if lower is not None:
        clauses.append("bucket >= toStartOfHour({w_lower:DateTime64(3, 'UTC')})")
        params["w_lower"] = lower
    return await _counts(ch, filters, "trace_rollup_hour", HOUR, clauses, params)


async def minute_counts(ch: ClickHouse, filters: TraceFilters, hour: datetime) -> list[Count]:
    """Traces per minute (newest first) of one hour."""
    clauses = ["bucket >= {w_hour:DateTime('UTC')}", "bucket < {w_hour:DateTime('UTC')} + INTERVAL 1 HOUR"]
    return await _counts(ch, filters, "trace_rollup_minute", MINUTE, clauses, {"w_hour": hour})


def crossing(counts: Sequence[Count], upper: datetime | None, need: int) -> tuple[Count, int] | None:
    """The newest bucket at or before ``upper`` by which the buckets hold ``need`` traces, and how
    many of them it must give; None when all hold fewer."""
    seen = 0
    for count in counts:
        if upper is not None and count.start > upper:
            continue
        if seen + count.traces >= need:
            return count, need - seen
        seen += count.traces
    return None


def estimate(count: Count, inside: int, end_of_data: datetime) -> datetime:
    """Where in ``count``'s span ``inside`` of its traces start, if spread evenly up to
    ``end_of_data`` (× :data:`MARGIN`)."""
    end = min(count.start + count.span, end_of_data)
    if end <= count.start:
        return count.start
    share = min(1.0, MARGIN * inside / count.traces)
    lower = end - (end - count.start) * share
    return max(count.start, lower.replace(microsecond=lower.microsecond // 1000 * 1000))


def windows(
    hours: Sequence[Count],
    minutes_of: Mapping[datetime, Sequence[Count]],
    upper: datetime | None,
    limit: int,
    filters: TraceFilters,
    now: datetime | None = None,
) -> list[datetime]:
    """The lower bounds to try in turn, narrowest first (then none at all): for each factor of the
    page size, the estimate within the oldest minute needed, that whole minute, that whole hour.
    ``minutes_of``: the minute counts of the hours :func:`needed_hours` named. Bounds at or
    before the filters' ``from`` are left out (the read without a bound reads the same)."""
    end_of_data = upper or now or datetime.now(UTC)
    out: list[datetime] = []
    for factor in EXACT if filters.exact else WIDENING:
        found = crossing(hours, upper, limit * factor)
        if found is None:
            continue
        hour, inside = found
        candidates = []
        minute = crossing(minutes_of.get(hour.start, ()), upper, inside)
        if minute is not None:
            candidates += [estimate(minute[0], minute[1], end_of_data), minute[0].start]
        candidates.append(hour.start)
        for lower in candidates:
            if (filters.start is None or lower > filters.start) and (not out or lower < out[-1]):
                out.append(lower)
    return out


def needed_hours(hours: Sequence[Count], upper: datetime | None, limit: int, filters: TraceFilters) -> list[datetime]:
    """The hours whose minutes :func:`windows` looks into."""
    found = (crossing(hours, upper, limit * factor) for factor in (EXACT if filters.exact else WIDENING))
    return sorted({f[0].start for f in found if f is not None})
