"""Newest-first pages of traces without sorting a tenant's whole history.

A page (``GET /v1/traces``, and each chunk of the export) is the newest ``limit`` traces before
an upper bound. Sorting every matching trace to keep 50 costs a read of all of them (0.5–2 s
at 10 million traces). Instead the hour rollup says how many traces each hour holds
(:func:`hour_counts`, one small read) and the page reads only the newest time that holds
enough of them (:func:`lower_bound`: whole hours, and within the oldest hour it needs, the part
that should hold them if its traces were spread evenly, with a margin), with ``FINAL`` over that
window only. When the filters are
not all rollup dimensions the counts are upper bounds, so a window may hold too few matches:
the caller then widens it (:data:`WIDENING`), last to no lower bound at all, which is always
right. Pure apart from :func:`hour_counts`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gateway.trace_filters import TraceFilters
from trulayer_common.clickhouse import ClickHouse

HOUR = timedelta(hours=1)
# Within an hour, read this many times the span its traces would need if spread evenly.
MARGIN = 4
# Factors of the page size the window is sized for, tried in turn; then no lower bound.
EXACT = (1,)
WIDENING = (1, 16)


@dataclass(frozen=True)
class HourCount:
    hour: datetime
    traces: int


async def hour_counts(
    ch: ClickHouse, filters: TraceFilters, upper: datetime | None, lower: datetime | None
) -> list[HourCount]:
    """Traces per hour (newest first) of the tenant under the filters' rollup dimensions, in
    ``[floor(lower), upper]`` by hour."""
    where = filters.rollup
    clauses, params = [where.sql()], dict(where.params)
    if upper is not None:
        clauses.append("bucket <= toStartOfHour({w_upper:DateTime64(3, 'UTC')})")
        params["w_upper"] = upper
    if lower is not None:
        clauses.append("bucket >= toStartOfHour({w_lower:DateTime64(3, 'UTC')})")
        params["w_lower"] = lower
    rows = await ch.query(
        f"SELECT bucket, toUInt64(sum(traces)) AS n FROM {ch.database}.trace_rollup_hour "
        f"WHERE {' AND '.join(clauses)} GROUP BY bucket ORDER BY bucket DESC",
        params,
    )
    return [HourCount(r["bucket"].replace(tzinfo=UTC), int(r["n"])) for r in rows]


def lower_bound(
    counts: Sequence[HourCount],
    upper: datetime | None,
    need: int,
    now: datetime | None = None,
    *,
    whole_hours: bool = False,
) -> datetime | None:
    """Where a window ending at ``upper`` (or ``now``) should start to hold ``need`` traces:
    the newest whole hours, and within the oldest of them the span its count says (×
    :data:`MARGIN`; the whole hour with ``whole_hours``); None when all hours together hold
    fewer (read without a lower bound)."""
    end_of_data = upper or now or datetime.now(UTC)
    seen = 0
    for count in counts:
        if upper is not None and count.hour > upper:
            continue
        if count.traces and seen + count.traces >= need:
            end = min(count.hour + HOUR, end_of_data)
            if whole_hours or end <= count.hour:
                return count.hour
            share = MARGIN * (need - seen) / count.traces
            lower = end - (end - count.hour) * min(1.0, share)
            return max(count.hour, lower.replace(microsecond=lower.microsecond // 1000 * 1000))
        seen += count.traces
    return None


def windows(
    counts: Sequence[HourCount],
    upper: datetime | None,
    limit: int,
    filters: TraceFilters,
    now: datetime | None = None,
) -> list[datetime]:
    """The lower bounds to try in turn, narrowest first (then none at all): for each factor of
    the page size, the estimate within the oldest hour needed (right when an hour's traces are
    spread evenly up to now), then that whole hour (holding them for sure when the counts are
    exact: it helps when a tenant's traffic stopped a while ago). Bounds at or before the
    filters' ``from`` are left out (the read without a bound reads the same)."""
    out: list[datetime] = []
    for factor in EXACT if filters.exact else WIDENING:
        for whole in (False, True):
            lower = lower_bound(counts, upper, limit * factor, now, whole_hours=whole)
            if lower is None or (filters.start is not None and lower <= filters.start):
                continue
            if not out or lower < out[-1]:
                out.append(lower)
    return out
