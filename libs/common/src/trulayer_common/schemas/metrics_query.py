"""``POST /v1/metrics/query``: the analytical query API of seed 002, in TrueFoundry's wire shape.

The names below are the vocabulary of the API (API.md "Read"); the gateway's query layer
(``gateway.query``) validates requests against them with messages that name the problem, and
these models document the request and the answer in ``/openapi.json``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

QUERY_TYPES = ("distribution", "timeseries")
PLAIN_AGGREGATIONS = (
    "sum",
    "count",
    "countDistinct",
    "min",
    "max",
    "avg",
    "p5",
    "p10",
    "p25",
    "p50",
    "p75",
    "p90",
    "p95",
    "p99",
    "p999",
)
RATE_AGGREGATIONS = ("rateSum", "rateAvg", "rateMin", "rateMax", "ratePerMinute")
AGGREGATIONS = PLAIN_AGGREGATIONS + RATE_AGGREGATIONS
OPERATORS = (
    "EQUAL",
    "NOT_EQUAL",
    "IN",
    "NOT_IN",
    "STRING_CONTAINS",
    "STRING_NOT_CONTAINS",
    "STRING_STARTS_WITH",
    "STRING_NOT_STARTS_WITH",
    "STRING_ENDS_WITH",
    "STRING_NOT_ENDS_WITH",
    "GREATER_THAN",
    "GREATER_THAN_EQUAL",
    "LESS_THAN",
    "LESS_THAN_EQUAL",
    "BETWEEN",
    "IS_NULL",
    "ARRAY_HAS_ANY",
    "ARRAY_HAS_NONE",
)
INTERVAL_UNITS = ("second", "minute", "hour", "day", "week", "month", "year")
INTERVAL_PATTERN = r"^\s*[0-9]+\s*(second|minute|hour|day|week|month|year)s?\s*$"


class _Request(BaseModel):
    # Unknown request fields are ignored (API.md: clients may be newer than us).
    model_config = ConfigDict(extra="ignore")


class QueryAggregation(_Request):
    type: Literal[AGGREGATIONS] = Field(description="rate* only on timeseries")  # type: ignore[valid-type]
    column: str = Field(description="a numeric field of the data source (count/countDistinct: any field)")


class QueryFilter(_Request):
    fieldName: str | None = Field(default=None, description="a field of the data source, or 'metadata.<key>'")
    metadataKey: str | None = Field(default=None, description="a metadata key (instead of fieldName)")
    operator: Literal[OPERATORS]  # type: ignore[valid-type]
    value: Any = Field(
        default=None,
        description="IN, NOT_IN, ARRAY_HAS_ANY, ARRAY_HAS_NONE: a list; BETWEEN: [lo, hi]; IS_NULL: true|false; "
        "others: a scalar",
    )


class MetricsQueryRequest(_Request):
    """What to aggregate, over which window, grouped and filtered how."""

    startTime: str = Field(description="ISO 8601, inclusive")
    endTime: str = Field(description="ISO 8601, exclusive; after startTime")
    dataSource: Literal["traces", "modelMetrics", "spans", "evaluations", "feedback", "configMetrics"] = Field(
        description="modelMetrics is an alias of traces"
    )
    type: Literal[QUERY_TYPES] = "distribution"  # type: ignore[valid-type]
    aggregations: list[QueryAggregation] = Field(default_factory=list, max_length=50)
    groupBy: list[str] = Field(default_factory=list, max_length=8, description="fields or 'metadata.<key>'")
    filters: list[QueryFilter] = Field(default_factory=list, max_length=50, description="AND-combined")
    interval: str | None = Field(
        default=None,
        pattern=INTERVAL_PATTERN,
        description="timeseries bucket: '<n> <unit>', unit second|minute|hour|day|week|month|year (plural allowed)",
    )
    intervalInSeconds: int | None = Field(default=None, description="deprecated alias of interval; interval wins")


class DataPoint(BaseModel):
    """One row: ``total``, one key per aggregation (``<type><Column>``, e.g. ``p99LatencyMs``), one
    per groupBy entry (its field name, ``metadata.<key>`` as given), and on timeseries rows the
    bucket's ``startTimestamp``/``endTimestamp``."""

    model_config = ConfigDict(extra="allow")

    total: int
    startTimestamp: str | None = None
    endTimestamp: str | None = None


class DataPoints(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataPoints: list[DataPoint]


class MetricsQueryResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: DataPoints
