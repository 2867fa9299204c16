"""A ``POST /v1/metrics/query`` body → a checked :class:`Query`, or a :class:`QueryError` naming
the field, operator or value at fault (the HTTP edge answers it as a 400).

Pure: no I/O. Every name the request uses is looked up in the declarations of
:mod:`gateway.query.sources`; values are checked for shape and type here and bound as
parameters later, never spliced into SQL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.query.intervals import Interval, IntervalError, from_seconds, parse_interval
from gateway.query.sources import METADATA_KIND, OPERATORS_BY_KIND, SOURCES, DataSource, Field, Kind
from trulayer_common.schemas.metrics_query import AGGREGATIONS, OPERATORS, QUERY_TYPES, RATE_AGGREGATIONS

MAX_FILTERS = 50
MAX_AGGREGATIONS = 50
MAX_GROUP_BY = 8
MAX_LIST_VALUES = 1_000
MAX_TEXT = 1_024
MAX_METADATA_KEY = 256
MAX_BUCKETS = 10_000
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
METADATA_PREFIX = "metadata."
_LIST_OPERATORS = frozenset({"IN", "NOT_IN", "ARRAY_HAS_ANY", "ARRAY_HAS_NONE"})
_PERCENTILES = {"p5": 0.05, "p10": 0.1, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p90": 0.9, "p95": 0.95, "p99": 0.99}
PERCENTILES = {**_PERCENTILES, "p999": 0.999}


class QueryError(ValueError):
    """A malformed query; the message names what is wrong."""


@dataclass(frozen=True)
class Target:
    """What a filter or a groupBy entry reads: a declared field, or one metadata key."""

    name: str  # as the request named it (the groupBy answer key)
    field: Field | None = None
    metadata_key: str | None = None

    @property
    def kind(self) -> Kind:
        return self.field.kind if self.field is not None else METADATA_KIND


@dataclass(frozen=True)
class Aggregation:
    type: str
    field: Field

    @property
    def key(self) -> str:
        """``<type><Column>``: ``sumCostInUSD``, ``p99LatencyMs``."""
        return self.type + self.field.name[0].upper() + self.field.name[1:]

    @property
    def rate(self) -> bool:
        return self.type in RATE_AGGREGATIONS


@dataclass(frozen=True)
class Filter:
    target: Target
    operator: str
    value: Any


@dataclass(frozen=True)
class Query:
    source: DataSource
    start: datetime
    end: datetime
    interval: Interval | None  # None: a distribution
    aggregations: tuple[Aggregation, ...]
    group_by: tuple[Target, ...]
    filters: tuple[Filter, ...]
    # A further condition over raw rows (SQL, bound parameters) from a caller of the engine that
    # filters on more than the query API can say (``GET /v1/metrics``); it forces raw reads.
    raw: tuple[str, dict[str, Any]] | None = None

    @property
    def metadata_keys(self) -> frozenset[str]:
        return frozenset(
            t.metadata_key for t in (*self.group_by, *(f.target for f in self.filters)) if t.metadata_key is not None
        )


def _time(body: dict[str, Any], name: str) -> datetime:
    value = body.get(name)
    if value is None:
        raise QueryError(f"{name} is required (ISO 8601)")
    if not isinstance(value, str) or len(value) > 64:
        raise QueryError(f"Invalid {name}: expected an ISO 8601 timestamp")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise QueryError(f"Invalid {name}: {value!r} is not an ISO 8601 timestamp") from None
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if not EARLIEST <= parsed <= LATEST:
        raise QueryError(f"Invalid {name}: expected a time from 1970-01-01 to 2100-01-01")
    # Storage keeps milliseconds: a finer bound would match nothing more.
    return parsed.astimezone(UTC).replace(microsecond=parsed.microsecond // 1000 * 1000)


def _target(source: DataSource, name: object, what: str) -> Target:
    if not isinstance(name, str) or not name:
        raise QueryError(f"{what} must be a non-empty string")
    if name.startswith(METADATA_PREFIX):
        return _metadata(source, name[len(METADATA_PREFIX) :], name)
    found = source.fields.get(name)
    if found is None:
        raise QueryError(f"Unsupported {what}: {name}")
    return Target(name, field=found)


def _metadata(source: DataSource, key: object, name: str) -> Target:
    if source.metadata is None:
        raise QueryError(f"Unsupported filter name: {name} (the {source.name} source has no metadata)")
    if not isinstance(key, str) or not key or len(key) > MAX_METADATA_KEY:
        raise QueryError(f"Invalid metadata key {key!r}: a non-empty string of at most {MAX_METADATA_KEY} characters")
    return Target(name, metadata_key=key)


def _scalar(kind: Kind, where: str, value: Any) -> Any:
    if kind in ("number", "integer"):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise QueryError(f"Invalid value for {where}: expected a finite number, got {value!r}")
        return float(value)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise QueryError(f"Invalid value for {where}: expected a string, got {value!r}")
    text = str(value)
    if len(text) > MAX_TEXT:
        raise QueryError(f"Invalid value for {where}: longer than {MAX_TEXT} characters")
    return text


def _filter(source: DataSource, raw: object, index: int) -> Filter:
    if not isinstance(raw, dict):
        raise QueryError(f"filters[{index}] must be an object with fieldName (or metadataKey), operator and value")
    if raw.get("metadataKey") is not None:
        key = raw["metadataKey"]
        target = _metadata(source, key, f"{METADATA_PREFIX}{key}")
    elif "fieldName" in raw:
        name = raw["fieldName"]
        if not isinstance(name, str) or not name:
            raise QueryError(f"filters[{index}].fieldName must be a non-empty string")
        target = _target(source, name, "filter name")
    else:
        raise QueryError(f"filters[{index}] needs fieldName or metadataKey")
    operator = raw.get("operator")
    if operator not in OPERATORS:
        raise QueryError(f"Unsupported operator {operator!r} in filters[{index}] (filter name: {target.name})")
    allowed = OPERATORS_BY_KIND[target.kind]
    if operator not in allowed:
        raise QueryError(
            f"Operator {operator} is not allowed on filter name: {target.name} (allowed: {', '.join(sorted(allowed))})"
        )
    value = raw.get("value")
    where = f"filter {target.name} with operator {operator}"
    if operator == "IS_NULL":
        if value is None:
            value = True
        if not isinstance(value, bool):
            raise QueryError(f"Invalid value for {where}: expected true or false")
        return Filter(target, operator, value)
    if value is None:
        raise QueryError(f"Missing value for {where}")
    if operator in _LIST_OPERATORS:
        if not isinstance(value, list) or not value:
            raise QueryError(f"Invalid value for {where}: expected a non-empty list")
        if len(value) > MAX_LIST_VALUES:
            raise QueryError(f"Invalid value for {where}: more than {MAX_LIST_VALUES} values")
        # An array's items are strings (tags); IN and NOT_IN compare values of the field's kind.
        item_kind: Kind = target.kind if operator in ("IN", "NOT_IN") else "string"
        return Filter(target, operator, tuple(_scalar(item_kind, where, v) for v in value))
    if operator == "BETWEEN":
        if not isinstance(value, list) or len(value) != 2:
            raise QueryError(f"Invalid value for {where}: expected [low, high]")
        low, high = (_scalar(target.kind, where, v) for v in value)
        if low > high:
            raise QueryError(f"Invalid value for {where}: low {low} is above high {high}")
        return Filter(target, operator, (low, high))
    if isinstance(value, list | dict):
        raise QueryError(f"Invalid value for {where}: expected a single value, not a list or an object")
    return Filter(target, operator, _scalar(target.kind, where, value))


def _aggregation(source: DataSource, raw: object, index: int, timeseries: bool) -> Aggregation:
    if not isinstance(raw, dict):
        raise QueryError(f"aggregations[{index}] must be an object {{type, column}}")
    kind, column = raw.get("type"), raw.get("column")
    if kind not in AGGREGATIONS:
        raise QueryError(f"Unsupported aggregation type: {kind!r} (supported: {', '.join(AGGREGATIONS)})")
    if not isinstance(column, str) or not column:
        raise QueryError(f"aggregations[{index}].column must be a field name")
    found = source.fields.get(column)
    if found is None:
        raise QueryError(f"Unsupported aggregation column: {column}")
    if kind in RATE_AGGREGATIONS and not timeseries:
        raise QueryError(f"Aggregation {kind} is only allowed in a timeseries query")
    if not found.numeric and kind not in ("count", "countDistinct"):
        raise QueryError(f"Aggregation {kind} is not allowed on column {column}: only count and countDistinct")
    return Aggregation(kind, found)


def _list(body: dict[str, Any], name: str, limit: int) -> list[Any]:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise QueryError(f"{name} must be a list")
    if len(value) > limit:
        raise QueryError(f"{name}: at most {limit} entries")
    return value


def _interval(body: dict[str, Any]) -> Interval | None:
    try:
        if body.get("interval") is not None:
            return parse_interval(body["interval"])
        if body.get("intervalInSeconds") is not None:
            return from_seconds(body["intervalInSeconds"])
    except IntervalError as exc:
        raise QueryError(str(exc)) from None
    return None


def parse_query(body: object) -> Query:
    """The checked query; :class:`QueryError` for the first problem found."""
    if not isinstance(body, dict):
        raise QueryError("The body must be a JSON object")
    name = body.get("dataSource")
    if not isinstance(name, str) or name not in SOURCES:
        raise QueryError(f"Unsupported dataSource: {name!r} (supported: {', '.join(SOURCES)})")
    source = SOURCES[name]
    kind = body.get("type", "distribution")
    if kind not in QUERY_TYPES:
        raise QueryError(f"Unsupported type: {kind!r} (distribution or timeseries)")
    start, end = _time(body, "startTime"), _time(body, "endTime")
    if end <= start:
        raise QueryError("endTime must be after startTime")
    interval = _interval(body)
    if kind == "timeseries":
        if interval is None:
            raise QueryError("A timeseries query needs an interval (e.g. '1 hour')")
        buckets = interval.index_of(_before(end)) - interval.index_of(start) + 1
        if buckets > MAX_BUCKETS:
            raise QueryError(f"Too many buckets: {buckets} {interval} buckets (at most {MAX_BUCKETS})")
    else:
        interval = None
    aggregations: dict[str, Aggregation] = {}
    for index, raw in enumerate(_list(body, "aggregations", MAX_AGGREGATIONS)):
        aggregation = _aggregation(source, raw, index, kind == "timeseries")
        aggregations.setdefault(aggregation.key, aggregation)
    group_by: dict[str, Target] = {}
    for raw in _list(body, "groupBy", MAX_GROUP_BY):
        target = _target(source, raw, "groupBy field")
        if not (target.field is None or target.field.groupable):
            raise QueryError(f"Unsupported groupBy field: {target.name} (an array cannot be grouped by)")
        group_by.setdefault(target.name, target)
    filters = tuple(_filter(source, raw, i) for i, raw in enumerate(_list(body, "filters", MAX_FILTERS)))
    return Query(source, start, end, interval, tuple(aggregations.values()), tuple(group_by.values()), filters)


def _before(end: datetime) -> datetime:
    """The last millisecond inside a window ending (exclusively) at ``end``."""
    return end - timedelta(milliseconds=1)
