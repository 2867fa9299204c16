"""The SQL of a planned query: one statement, a ``UNION ALL`` of one branch per tier, each
branch computing the same *partial aggregates* per (bucket, group), merged by an outer
``GROUP BY``. Pure: text and bound parameters, no I/O.

Partials per numeric field: ``count`` (non-null values), ``sum`` (an Int128 in units of
:data:`NANO`, each value rounded to 9 decimals: exact whatever the order of addition, as the
rollups store it), ``min``, ``max``, ``bins`` (the histogram of
:mod:`gateway.query.histogram`), and for raw-only plans ``distinct``. A rollup branch merges the
stored partials; a raw branch computes them from rows; a subtracted branch (traces without a
metadata key: all traces minus those with the key) negates them.

Only declared names reach the text (sources, fields, aliases ``g0``, ``f0_sum``); every value
the caller sent, metadata keys included, is a bound parameter ``{p<n>:<type>}``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gateway.query.histogram import histogram_sql
from gateway.query.plan import Plan, Segment, Tier
from gateway.query.request import Aggregation, Filter, Query, Target
from gateway.query.sources import Field

STATS_OF = {
    "sum": ("sum",),
    "count": ("count",),
    "countDistinct": ("distinct",),
    "min": ("min",),
    "max": ("max",),
    "avg": ("sum", "count"),
    "rateSum": ("sum",),
    "rateAvg": ("sum", "count"),
    "rateMin": ("min",),
    "rateMax": ("max",),
    "ratePerMinute": ("sum",),
}
STAT_ORDER = ("count", "sum", "min", "max", "bins", "distinct")
_TYPES = {
    "total": "Int64",
    "count": "Int64",
    "sum": "Int128",
    "min": "Nullable(Float64)",
    "max": "Nullable(Float64)",
    "bins": "Map(Int32, Int64)",
    "distinct": "Int64",
}
_OUTER = {"count": "sum", "sum": "sum", "min": "min", "max": "max", "bins": "sumMap", "distinct": "sum"}
_ROLLUP_TABLES: dict[Tier, str] = {"minute": "trace_rollup_minute", "hour": "trace_rollup_hour"}
_METADATA_ROLLUPS: dict[Tier, str] = {"minute": "trace_metadata_rollup_minute", "hour": "trace_metadata_rollup_hour"}
MAX_ROWS = 200_000  # (bucket, group) rows one statement may answer
NANO = 1_000_000_000  # sums are integers of 10⁻⁹ units


def stats_of(aggregation: Aggregation) -> tuple[str, ...]:
    """A percentile reads the histogram, and min and max to pin its ends (``histogram.quantile``)."""
    return STATS_OF.get(aggregation.type, ("bins", "min", "max"))


@dataclass
class Params:
    """Bound parameters, named ``p0``, ``p1``, … in order of use."""

    values: dict[str, Any] = field(default_factory=dict)

    def bind(self, value: Any, kind: str) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"{{{name}:{kind}}}"


@dataclass(frozen=True)
class Columns:
    """The partials a query needs: ``(alias, field, stat)`` in a fixed order."""

    stats: tuple[tuple[str, Field, str], ...]

    @staticmethod
    def of(query: Query, *, bounds: bool = True) -> Columns:
        """``bounds``: read min and max for percentiles too (not when a group's min and max are
        unknown: traces without a metadata key, counted by subtraction)."""
        wanted: dict[str, set[str]] = {}
        fields: dict[str, Field] = {}
        for aggregation in query.aggregations:
            needs = set(stats_of(aggregation))
            if not bounds and "bins" in needs:
                needs -= {"min", "max"}
            wanted.setdefault(aggregation.field.name, set()).update(needs)
            fields[aggregation.field.name] = aggregation.field
        stats = []
        for index, (name, needed) in enumerate(wanted.items()):
            for stat in STAT_ORDER:
                if stat in needed:
                    stats.append((f"f{index}_{stat}", fields[name], stat))
        return Columns(tuple(stats))

    def alias(self, target: Field, stat: str) -> str:
        found = self.find(target, stat)
        if found is None:
            raise KeyError((target.name, stat))
        return found

    def find(self, target: Field, stat: str) -> str | None:
        for alias, found, kind in self.stats:
            if found.name == target.name and kind == stat:
                return alias
        return None


def _raw_stat(column: Field, stat: str) -> str:
    value = column.sql
    if stat == "count":
        if column.numeric and column.nullable:
            return f"toInt64(count({value}))"
        if column.empty_is_null:
            return f"toInt64(countIf({value} != ''))"
        return "toInt64(count())"
    if stat == "sum":
        if column.kind == "integer":
            return f"CAST(sum(toInt128({value}) * {NANO}) AS Int128)"
        return f"CAST(sum(toInt128(round(toFloat64(ifNull({value}, 0)) * {NANO}))) AS Int128)"
    if stat in ("min", "max"):
        return f"CAST({stat}(toFloat64({value})) AS Nullable(Float64))"
    if stat == "bins":
        histogram = histogram_sql(value, nullable=column.nullable, integer=column.kind == "integer")
        return f"CAST(sumMap({histogram}) AS Map(Int32, Int64))"
    if column.empty_is_null:
        return f"toInt64(uniqExactIf({value}, {value} != ''))"
    return f"toInt64(uniqExact({value}))"


def _rollup_stat(column: Field, stat: str, sign: int) -> str:
    prefix = column.rollup
    if stat == "count":
        source = f"{prefix}_count" if column.nullable else "traces"
        return f"{'-' if sign < 0 else ''}toInt64(sum({source}))"
    if stat == "sum":
        return f"CAST({'-' if sign < 0 else ''}sum({prefix}_sum) AS Int128)"
    if stat in ("min", "max"):
        if sign < 0:
            return "CAST(NULL AS Nullable(Float64))"
        return f"CAST({stat}({prefix}_{stat}) AS Nullable(Float64))"
    if stat == "bins":
        merged = f"CAST(sumMap({prefix}_bins) AS Map(Int32, Int64))"
        return merged if sign > 0 else f"mapApply((k, v) -> (k, -v), {merged})"
    raise ValueError(f"{stat} is not served from rollups")


def metadata_value_sql(metadata_column: str, key_param: str) -> str:
    """A metadata key's value as text: '' when absent or null (how the rollup's view reads it)."""
    raw = f"JSONExtractRaw({metadata_column}, {key_param})"
    return f"multiIf({raw} IN ('', 'null'), '', startsWith({raw}, '\"'), JSONExtractString({raw}), {raw})"


def _condition(expr: str, target: Target, condition: Filter, params: Params) -> str:
    """SQL for one filter on ``expr``; absent strings read as '' (see ``plan.matches_absent``)."""
    op, value = condition.operator, condition.value
    numeric = target.field is not None and target.field.numeric
    kind = "Float64" if numeric else "String"
    if op == "IS_NULL":
        if target.field is not None and target.field.nullable:
            test = f"{expr} IS NULL"
        elif target.field is None or target.field.empty_is_null:
            test = f"{expr} = ''"
        else:
            test = "0"  # never null
        return test if value else f"NOT ({test})"
    if op in ("EQUAL", "NOT_EQUAL"):
        return f"{expr} {'=' if op == 'EQUAL' else '!='} {params.bind(value, kind)}"
    if op in ("IN", "NOT_IN"):
        return f"{expr} {'IN' if op == 'IN' else 'NOT IN'} {params.bind(list(value), f'Array({kind})')}"
    if op in ("GREATER_THAN", "GREATER_THAN_EQUAL", "LESS_THAN", "LESS_THAN_EQUAL"):
        sign = {"GREATER_THAN": ">", "GREATER_THAN_EQUAL": ">=", "LESS_THAN": "<", "LESS_THAN_EQUAL": "<="}[op]
        return f"{expr} {sign} {params.bind(value, kind)}"
    if op == "BETWEEN":
        return f"{expr} BETWEEN {params.bind(value[0], kind)} AND {params.bind(value[1], kind)}"
    if op in ("ARRAY_HAS_ANY", "ARRAY_HAS_NONE"):
        test = f"hasAny({expr}, {params.bind(list(value), 'Array(String)')})"
        return test if op == "ARRAY_HAS_ANY" else f"NOT {test}"
    negate = "_NOT_" in op
    text = params.bind(value, "String")
    if "CONTAINS" in op:
        test = f"position({expr}, {text}) > 0"
    elif "STARTS_WITH" in op:
        test = f"startsWith({expr}, {text})"
    else:
        test = f"endsWith({expr}, {text})"
    return f"NOT ({test})" if negate else test


def _time_ranges(column: str, segments: Iterable[Segment], params: Params, kind: str) -> str:
    ranges = [f"({column} >= {params.bind(s.start, kind)} AND {column} < {params.bind(s.end, kind)})" for s in segments]
    return ranges[0] if len(ranges) == 1 else "(" + " OR ".join(ranges) + ")"


@dataclass(frozen=True)
class Statement:
    """``subtract``: the position of the metadata key among the groups when the traces without
    it are computed in Python (``src`` 2 rows minus ``src`` 1 rows, :mod:`gateway.query.engine`)."""

    sql: str
    params: dict[str, Any]
    group_count: int
    columns: Columns
    subtract: int | None = None


class QuerySql:
    """Builds the statement of ``query`` under ``plan`` for tenant ``tenant_id``."""

    def __init__(self, query: Query, plan: Plan, tenant_id: str, database: str) -> None:
        self.query = query
        self.plan = plan
        self.database = database
        self.params = Params()
        self.tenant = self.params.bind(tenant_id, "String")
        self.columns = Columns.of(query, bounds=not plan.absent_included)
        self._metadata_key = self.params.bind(plan.metadata_key, "String") if plan.metadata_key is not None else None
        self._raw_keys: dict[str, str] = {}

    # -- expressions ---------------------------------------------------------------------

    def _bucket(self, time_expr: str, ms_expr: str) -> str:
        interval = self.query.interval
        return "toInt64(0)" if interval is None else f"toInt64({interval.index_sql(time_expr, ms_expr)})"

    def _raw_expr(self, target: Target) -> str:
        if target.field is not None:
            return target.field.sql
        key = target.metadata_key
        assert key is not None and self.query.source.metadata is not None
        if key not in self._raw_keys:
            self._raw_keys[key] = self.params.bind(key, "String")
        return metadata_value_sql(self.query.source.metadata, self._raw_keys[key])

    def _rollup_expr(self, target: Target) -> str:
        if target.field is not None:
            assert target.field.rollup is not None
            return target.field.rollup
        return "meta_value"

    @staticmethod
    def _group_value(expr: str) -> str:
        return f"CAST(toString({expr}) AS Nullable(String))"

    # -- branches ------------------------------------------------------------------------

    def _select(self, bucket: str, groups: list[str], stats: list[str], total: str, src: int = 0) -> str:
        parts = [f"{bucket} AS b", f"toUInt8({src}) AS src"]
        parts += [f"{g} AS g{i}" for i, g in enumerate(groups)]
        parts.append(f"{total} AS c_total")
        parts += [f"{s} AS c_{alias}" for s, (alias, _, _) in zip(stats, self.columns.stats, strict=True)]
        return ", ".join(parts)

    def _group_by(self) -> str:
        return ", ".join(["b", *(f"g{i}" for i in range(len(self.query.group_by)))])

    def raw_branch(self, segments: list[Segment]) -> str:
        source = self.query.source
        groups = [self._group_value(self._raw_expr(t)) for t in self.query.group_by]
        stats = [_raw_stat(column, stat) for _, column, stat in self.columns.stats]
        where = [f"tenant_id = {self.tenant}", _time_ranges(source.time, segments, self.params, "DateTime64(3, 'UTC')")]
        where += [_condition(self._raw_expr(f.target), f.target, f, self.params) for f in self.query.filters]
        if self.query.raw is not None:
            condition, values = self.query.raw
            where.append(f"({condition})")
            self.params.values.update(values)
        final = " FINAL" if source.final else ""
        bucket = self._bucket(source.time, f"toUnixTimestamp64Milli({source.time})")
        return (
            f"SELECT {self._select(bucket, groups, stats, 'toInt64(count())')} "
            f"FROM {self.database}.{source.table}{final} WHERE {' AND '.join(where)} GROUP BY {self._group_by()}"
        )

    def rollup_branch(
        self, tier: Tier, segments: list[Segment], *, metadata: str = "", sign: int = 1, src: int = 0
    ) -> str:
        """A branch over a rollup. ``metadata``: '' for the trace rollups; 'matching' for the
        metadata rollup's rows of the key that pass its filters, grouped by value; 'all' for all
        its rows of the key, grouped as absent (subtracted with ``sign`` -1); 'absent' for the
        trace rollups as the minuend of that subtraction (all traces, grouped as absent). Such a
        plan reads no min or max (``Columns.of``): those of all traces are not those of the
        traces without the key."""
        table = _METADATA_ROLLUPS[tier] if metadata in ("matching", "all") else _ROLLUP_TABLES[tier]
        groups = []
        for target in self.query.group_by:
            if target.metadata_key is not None and metadata != "matching":
                groups.append("CAST(NULL AS Nullable(String))")  # the traces without the key
            else:
                groups.append(self._group_value(self._rollup_expr(target)))
        stats = [_rollup_stat(column, stat, sign) for _, column, stat in self.columns.stats]
        where = [f"tenant_id = {self.tenant}", _time_ranges("bucket", segments, self.params, "DateTime('UTC')")]
        if metadata in ("matching", "all"):
            where.append(f"meta_key = {self._metadata_key}")
        for condition in self.query.filters:
            if condition.target.metadata_key is not None and metadata != "matching":
                continue
            where.append(_condition(self._rollup_expr(condition.target), condition.target, condition, self.params))
        total = f"{'-' if sign < 0 else ''}toInt64(sum(traces))"
        bucket = self._bucket("bucket", "(toInt64(toUnixTimestamp(bucket)) * 1000)")
        return (
            f"SELECT {self._select(bucket, groups, stats, total, src)} "
            f"FROM {self.database}.{table} WHERE {' AND '.join(where)} GROUP BY {self._group_by()}"
        )

    @property
    def subtract_in_python(self) -> bool:
        """Traces without the key = all − those with it. With no filter on the key, "those with
        it" are the matching rows already read: subtracted in Python instead of scanning the
        metadata rollup twice."""
        key = self.plan.metadata_key
        return (
            key is not None
            and self.plan.absent_included
            and any(t.metadata_key == key for t in self.query.group_by)
            and not any(f.target.metadata_key == key for f in self.query.filters)
        )

    def branches(self) -> list[str]:
        by_tier: dict[Tier, list[Segment]] = {}
        for segment in self.plan.segments:
            by_tier.setdefault(segment.tier, []).append(segment)
        out = []
        if "raw" in by_tier:
            out.append(self.raw_branch(by_tier["raw"]))
        for tier in ("minute", "hour"):
            pieces = by_tier.get(tier)
            if not pieces:
                continue
            if self.plan.metadata_key is None:
                out.append(self.rollup_branch(tier, pieces))
                continue
            if self.subtract_in_python:
                out.append(self.rollup_branch(tier, pieces, metadata="matching", src=1))
                out.append(self.rollup_branch(tier, pieces, metadata="absent", src=2))
                continue
            out.append(self.rollup_branch(tier, pieces, metadata="matching"))
            if self.plan.absent_included:
                out.append(self.rollup_branch(tier, pieces, metadata="absent"))
                out.append(self.rollup_branch(tier, pieces, metadata="all", sign=-1))
        return out

    def statement(self) -> Statement:
        inner = " UNION ALL ".join(f"({branch})" for branch in self.branches())
        groups = [f"g{i}" for i in range(len(self.query.group_by))]
        outer = ["b", "src", *groups, "sum(c_total) AS total"]
        outer += [f"{_OUTER[stat]}(c_{alias}) AS {alias}" for alias, _, stat in self.columns.stats]
        keys = ", ".join(["b", "src", *groups])
        sql = f"SELECT {', '.join(outer)} FROM ({inner}) GROUP BY {keys} LIMIT {MAX_ROWS + 1}"
        subtract = None
        if self.subtract_in_python:
            subtract = next(i for i, t in enumerate(self.query.group_by) if t.metadata_key == self.plan.metadata_key)
        return Statement(sql, self.params.values, len(groups), self.columns, subtract)
