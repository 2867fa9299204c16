"""Which rows answer a query: rollups where they give the same answer as raw rows, raw rows
elsewhere. Pure: the engine (:mod:`gateway.query.engine`) runs what this decides.

A window ``[start, end)`` is cut into segments: whole hours read from the hour rollup, whole
minutes at the edges from the minute rollup, and the sub-minute edges (or everything, when the
query cannot be served from rollups) from raw rows. A timeseries bucket is aligned on the
minute or hour grid (:mod:`gateway.query.intervals`) when it can use the tier, so every rollup
row lies inside one bucket.

A query can be served from the rollups when everything it reads is a rollup dimension
(project, model, status, error type) or one declared metadata key, and its aggregations are
mergeable (no countDistinct). A metadata key is read from the metadata rollups (minute and
hour), which only hold traces that have the key: traces without it (when the filters let them in) are the total
minus those with it, computed by subtraction, exact for counts, sums and histograms but not for
min and max (such a query is read raw).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from gateway.query.request import Filter, Query

Tier = Literal["raw", "minute", "hour"]
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
_MERGEABLE = frozenset(
    {"sum", "count", "avg", "min", "max", "p5", "p10", "p25", "p50", "p75", "p90", "p95", "p99", "p999"}
    | {"rateSum", "rateAvg", "rateMin", "rateMax", "ratePerMinute"}
)
_NOT_SUBTRACTABLE = frozenset({"min", "max", "rateMin", "rateMax"})
# A key declared later is complete in the rollup for traces received after it was declared; a
# trace may start up to a day after its receipt (the ingest bounds), so hours a day past that.
METADATA_SETTLING = timedelta(days=1)


@dataclass(frozen=True)
class Segment:
    tier: Tier
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Plan:
    """``segments`` cover the window exactly once. ``metadata_key``: the metadata rollup answers
    for this key (hour segments); ``absent_included``: traces without the key match the filters,
    so they are added as total − traces with the key."""

    segments: tuple[Segment, ...]
    metadata_key: str | None = None
    absent_included: bool = False

    @property
    def raw_only(self) -> bool:
        return all(s.tier == "raw" for s in self.segments)


def _floor(at: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + (at - epoch) // step * step


def _ceil(at: datetime, step: timedelta) -> datetime:
    floor = _floor(at, step)
    return floor if floor == at else floor + step


def _split(start: datetime, end: datetime, step: timedelta, tier: Tier) -> tuple[list[Segment], list[Segment]]:
    """(whole ``step``s inside [start, end) as ``tier``, the edges left over)."""
    first, last = _ceil(start, step), _floor(end, step)
    if first >= last:
        return [], [Segment("raw", start, end)]
    edges = [Segment("raw", a, b) for a, b in ((start, first), (last, end)) if a < b]
    return [Segment(tier, first, last)], edges


def segments(start: datetime, end: datetime, *, hour: bool, minute: bool) -> list[Segment]:
    """Cut ``[start, end)`` into hour, minute and raw segments (in time order)."""
    out: list[Segment] = []
    pending = [Segment("raw", start, end)]
    for step, tier, usable in ((HOUR, "hour", hour), (MINUTE, "minute", minute)):
        if not usable:
            continue
        rest: list[Segment] = []
        for piece in pending:
            whole, edges = _split(piece.start, piece.end, step, tier)  # type: ignore[arg-type]
            out += whole
            rest += edges
        pending = rest
    return sorted(out + pending, key=lambda s: s.start)


def matches_absent(condition: Filter) -> bool:
    """Whether a metadata filter keeps a trace without the key (its value reads as '')."""
    op, value = condition.operator, condition.value
    if op == "IS_NULL":
        return bool(value)
    if op in ("EQUAL", "STRING_CONTAINS", "STRING_STARTS_WITH", "STRING_ENDS_WITH"):
        return bool(value == "")
    if op in ("NOT_EQUAL", "STRING_NOT_CONTAINS", "STRING_NOT_STARTS_WITH", "STRING_NOT_ENDS_WITH"):
        return bool(value != "")
    if op == "IN":
        return "" in value
    if op == "NOT_IN":
        return "" not in value
    return False


def choose(query: Query, metadata_since: dict[str, datetime]) -> Plan:
    """The plan for ``query``; ``metadata_since``: declared metadata keys → when declared."""
    raw = Plan((Segment("raw", query.start, query.end),))
    source = query.source
    if not source.rollups or query.raw is not None:
        return raw
    targets = [*query.group_by, *(f.target for f in query.filters)]
    # Filters and groups must be dimensions of the rollups (a number is aggregated there, not kept).
    if any(t.field is not None and (t.field.rollup is None or t.field.numeric) for t in targets):
        return raw
    if any(a.type not in _MERGEABLE or a.field.rollup is None for a in query.aggregations):
        return raw
    keys = query.metadata_keys
    interval = query.interval
    if not keys:
        hour = interval is None or interval.on_grid(3_600_000)
        minute = interval is None or interval.on_grid(60_000)
        return Plan(tuple(segments(query.start, query.end, hour=hour, minute=minute)))
    if len(keys) > 1:
        return raw
    (key,) = keys
    since = metadata_since.get(key)
    if since is None:
        return raw
    absent = all(matches_absent(f) for f in query.filters if f.target.metadata_key == key)
    if absent and any(a.type in _NOT_SUBTRACTABLE for a in query.aggregations):
        return raw
    # The rollup is complete for hours starting a settling time after the key was declared.
    complete_from = max(query.start, _ceil(since + METADATA_SETTLING, HOUR))
    if complete_from >= query.end:
        return raw
    head = [Segment("raw", query.start, complete_from)] if complete_from > query.start else []
    hour = interval is None or interval.on_grid(3_600_000)
    minute = interval is None or interval.on_grid(60_000)
    body = segments(complete_from, query.end, hour=hour, minute=minute)
    return Plan(tuple(head + body), metadata_key=key, absent_included=absent)
