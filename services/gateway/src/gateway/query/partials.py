"""Partial aggregates per (bucket, group) → the data points of the answer. Pure.

A :class:`Partial` holds what the statement of :mod:`gateway.query.sql` returns for one bucket
and group (``total`` and the partials named by :class:`~gateway.query.sql.Columns`). Partials
merge (:func:`merge`: counts, sums and histograms add, min and max compare), so callers can
regroup them (``GET /v1/metrics`` sums over groups), and :func:`finalize` turns one into the
requested aggregations.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from gateway.query.histogram import quantile
from gateway.query.request import PERCENTILES, Aggregation, Query, Target
from gateway.query.sql import NANO, Columns

GroupKey = tuple[str | None, ...]
_MS = timedelta(milliseconds=1)


@dataclass
class Partial:
    total: int = 0
    stats: dict[str, Any] = field(default_factory=dict)


def _add(stat: str, a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    if stat in ("count", "sum", "distinct"):
        return a + b
    if stat == "min":
        return min(a, b)
    if stat == "max":
        return max(a, b)
    merged = dict(a)
    for bucket, count in b.items():
        merged[bucket] = merged.get(bucket, 0) + count
    return merged


def merge(columns: Columns, parts: Iterable[Partial]) -> Partial:
    out = Partial()
    for part in parts:
        out.total += part.total
        for alias, _, stat in columns.stats:
            out.stats[alias] = _add(stat, out.stats.get(alias), part.stats.get(alias))
    return out


def subtract(columns: Columns, whole: Partial, part: Partial) -> Partial:
    """``whole`` minus ``part`` (counts, sums and histograms; min and max are not read then)."""
    out = Partial(whole.total - part.total)
    for alias, _, stat in columns.stats:
        a, b = whole.stats.get(alias), part.stats.get(alias)
        if stat in ("count", "sum", "distinct"):
            out.stats[alias] = (a or 0) - (b or 0)
        elif stat == "bins":
            bins = dict(a or {})
            for bucket, count in (b or {}).items():
                bins[bucket] = bins.get(bucket, 0) - count
            out.stats[alias] = bins
        else:
            out.stats[alias] = None
    return out


def empty(columns: Columns) -> Partial:
    zeros: dict[str, Any] = {"count": 0, "sum": 0, "distinct": 0, "bins": {}, "min": None, "max": None}
    return Partial(0, {alias: zeros[stat] for alias, _, stat in columns.stats})


def exact_sum(value: Any) -> Decimal:
    """A sum partial (10⁻⁹ units) as a number."""
    return Decimal(int(value or 0)) / NANO


def _number(value: Any, integer: bool) -> float | int | None:
    if value is None:
        return None
    if integer:
        return int(value)
    return float(value)


def finalize(
    aggregations: Iterable[Aggregation], columns: Columns, part: Partial, bucket_seconds: float | None
) -> dict[str, Any]:
    """The answer keys of one row: ``total`` and ``<type><Column>`` per aggregation."""
    out: dict[str, Any] = {"total": int(part.total)}
    for aggregation in aggregations:
        column = aggregation.field
        integer = column.kind == "integer"

        def stat(name: str, column: Any = column) -> Any:
            alias = columns.find(column, name)
            return None if alias is None else part.stats.get(alias)

        kind = aggregation.type
        value: Any
        if kind in ("sum", "rateSum", "ratePerMinute"):
            value = _number(exact_sum(stat("sum")), integer and kind == "sum")
        elif kind == "count":
            value = int(stat("count") or 0)
        elif kind == "countDistinct":
            value = int(stat("distinct") or 0)
        elif kind in ("min", "max", "rateMin", "rateMax"):
            value = _number(stat(kind.removeprefix("rate").lower()), integer and not kind.startswith("rate"))
        elif kind in ("avg", "rateAvg"):
            count = int(stat("count") or 0)
            value = float(exact_sum(stat("sum"))) / count if count else None
        else:
            value = quantile(stat("bins") or {}, PERCENTILES[kind], stat("min"), stat("max"))
        if kind.startswith("rate") and value is not None:
            assert bucket_seconds is not None
            value = float(value) / (bucket_seconds / 60.0 if kind == "ratePerMinute" else bucket_seconds)
        out[aggregation.key] = value
    return out


def group_value(target: Target, text: str | None) -> Any:
    """A group's value as answered: '' (absent) is null; numbers come back as numbers."""
    if text is None or text == "":
        return None
    if target.field is not None and target.field.numeric:
        number = float(text)
        return int(number) if target.field.kind == "integer" else number
    return text


def iso_ms(at: datetime) -> str:
    """ISO 8601 with milliseconds and ``Z``."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def data_points(query: Query, columns: Columns, parts: Mapping[tuple[int, GroupKey], Partial]) -> list[dict[str, Any]]:
    """The ``dataPoints`` of the answer. A timeseries has every bucket of the window for every
    group that has data anywhere in it (the single group when there is no groupBy), empty ones
    with ``total`` 0; a distribution without groupBy always has its one row."""
    groups = sorted(
        {key for (_, key), part in parts.items() if part.total > 0},
        key=lambda key: tuple((value is not None, value or "") for value in key),
    )
    interval = query.interval
    points: list[dict[str, Any]] = []
    if interval is None:
        if not query.group_by and not groups:
            groups = [()]
        for key in groups:
            part = parts.get((0, key)) or empty(columns)
            points.append(_row(query, columns, part, key, None))
        points.sort(key=lambda p: -p["total"])
        return points
    if not query.group_by:
        groups = [()]
    first, last = interval.index_of(query.start), interval.index_of(query.end - _MS)
    for index in range(first, last + 1):
        start = max(interval.start_of(index), query.start)
        end = min(interval.start_of(index + 1), query.end)
        seconds = (end - start).total_seconds()
        for key in groups:
            part = parts.get((index, key)) or empty(columns)
            row = _row(query, columns, part, key, seconds)
            row["startTimestamp"], row["endTimestamp"] = iso_ms(start), iso_ms(end)
            points.append(row)
    return points


def _row(query: Query, columns: Columns, part: Partial, key: GroupKey, seconds: float | None) -> dict[str, Any]:
    row = finalize(query.aggregations, columns, part, seconds)
    for target, text in zip(query.group_by, key, strict=True):
        row[target.name] = group_value(target, text)
    return row


def normalise_key(key: GroupKey) -> GroupKey:
    """Absent values ('' or NULL) are one group."""
    return tuple(None if value in (None, "") else value for value in key)
