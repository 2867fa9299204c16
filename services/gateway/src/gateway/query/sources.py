"""The data sources of ``POST /v1/metrics/query`` and their fields: adding a source is declaring it.

A :class:`DataSource` names its table, its time column, how rows are deduplicated, and its
fields; a :class:`Field` gives its API name (TrueFoundry's camelCase), the SQL that reads it and
its kind, which decides the operators it accepts (:data:`OPERATORS_BY_KIND`) and whether it can
be aggregated. A source with rollups (traces) also says which fields are rollup dimensions and
which numeric fields the rollups aggregate (the column prefix in ``trace_rollup_*``).

Everything here is a constant chosen by us: user input never becomes SQL text, it only selects
among these declarations (values are bound parameters, :mod:`gateway.query.sql`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["id", "string", "number", "integer", "array"]

_STRING_OPS = frozenset(
    {
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
        "IS_NULL",
    }
)
_NUMBER_OPS = frozenset(
    {
        "EQUAL",
        "NOT_EQUAL",
        "IN",
        "NOT_IN",
        "GREATER_THAN",
        "GREATER_THAN_EQUAL",
        "LESS_THAN",
        "LESS_THAN_EQUAL",
        "BETWEEN",
        "IS_NULL",
    }
)
OPERATORS_BY_KIND: Mapping[Kind, frozenset[str]] = {
    "id": frozenset({"EQUAL", "IN", "NOT_IN"}),
    "string": _STRING_OPS,
    "number": _NUMBER_OPS,
    "integer": _NUMBER_OPS,
    "array": frozenset({"ARRAY_HAS_ANY", "ARRAY_HAS_NONE"}),
}
METADATA_KIND: Kind = "string"


@dataclass(frozen=True)
class Field:
    """``sql`` reads the field from a row of the source table. ``empty_is_null``: the column
    stores an absent value as '' (answered as null, matched by IS_NULL). ``nullable``: the column
    is Nullable. ``rollup``: for a dimension, its column in the rollups; for a number, the prefix
    of its rollup columns (``latency`` → ``latency_sum``, ``latency_bins``, …)."""

    name: str
    sql: str
    kind: Kind
    empty_is_null: bool = False
    nullable: bool = False
    rollup: str | None = None

    @property
    def numeric(self) -> bool:
        return self.kind in ("number", "integer")

    @property
    def groupable(self) -> bool:
        return self.kind != "array"


@dataclass(frozen=True)
class DataSource:
    name: str
    table: str
    time: str  # a DateTime64(3, 'UTC') column: the window and buckets apply to it
    fields: Mapping[str, Field]
    final: bool = True  # ReplacingMergeTree: FINAL keeps each row's latest version once
    metadata: str | None = None  # the column holding the metadata JSON object (metadata.<key>)
    rollups: bool = False  # served from trace_rollup_minute/hour where the query allows
    description: str = ""
    aliases: tuple[str, ...] = field(default_factory=tuple)


def _fields(*items: Field) -> dict[str, Field]:
    return {f.name: f for f in items}


TRACES = DataSource(
    name="traces",
    aliases=("modelMetrics",),
    table="traces",
    time="started_at",
    metadata="metadata",
    rollups=True,
    description="one row per trace; its time is started_at",
    fields=_fields(
        Field("traceId", "id", "id"),
        Field("projectId", "project_id", "id", rollup="project_id"),
        Field("name", "name", "string", empty_is_null=True),
        Field("modelName", "model", "string", empty_is_null=True, rollup="model"),
        Field("status", "status", "string", rollup="status"),
        Field("errorType", "failure_type", "string", empty_is_null=True, rollup="failure_type"),
        Field("conversationID", "session_id", "id", empty_is_null=True),
        Field("latencyMs", "latency_ms", "number", nullable=True, rollup="latency"),
        Field("costInUSD", "cost", "number", nullable=True, rollup="cost"),
        Field("inputTokens", "prompt_tokens", "integer", rollup="prompt_tokens"),
        Field("outputTokens", "completion_tokens", "integer", rollup="completion_tokens"),
        Field("totalTokens", "total_tokens", "integer", rollup="total_tokens"),
        Field(
            "tags",
            "arrayConcat(tag_list, arrayMap((k, v) -> concat(k, ':', v), mapKeys(tag_map), mapValues(tag_map)))",
            "array",
        ),
    ),
)

SPANS = DataSource(
    name="spans",
    table="spans",
    time="trace_started_at",
    metadata="metadata",
    description="one row per span; its time is its trace's started_at",
    fields=_fields(
        Field("spanId", "id", "id"),
        Field("traceId", "trace_id", "id"),
        Field("projectId", "project_id", "id"),
        Field("name", "name", "string", empty_is_null=True),
        Field("spanType", "type", "string"),
        Field("modelName", "model", "string", empty_is_null=True),
        Field("status", "if(error IS NULL OR error = '', 'success', 'error')", "string"),
        Field("latencyMs", "latency_ms", "number", nullable=True),
        Field("costInUSD", "cost", "number", nullable=True),
        Field("inputTokens", "prompt_tokens", "integer"),
        Field("outputTokens", "completion_tokens", "integer"),
    ),
)

EVALUATIONS = DataSource(
    name="evaluations",
    table="evaluations",
    time="created_at",
    description="one row per evaluation, in its latest state; its time is created_at",
    fields=_fields(
        Field("evalId", "id", "id"),
        Field("traceId", "trace_id", "id"),
        Field("projectId", "project_id", "id"),
        Field("metricName", "metric_name", "string"),
        Field("evaluatorType", "evaluator_type", "string"),
        Field("status", "status", "string"),
        Field("label", "label", "string", empty_is_null=True),
        Field("score", "score", "number", nullable=True),
    ),
)

FEEDBACK = DataSource(
    name="feedback",
    table="feedback",
    time="created_at",
    description="one row per feedback; its time is created_at",
    fields=_fields(
        Field("traceId", "trace_id", "id"),
        Field("projectId", "project_id", "id"),
        Field("label", "label", "string"),
        Field("score", "score", "number", nullable=True),
    ),
)

CONFIG_METRICS = DataSource(
    name="configMetrics",
    table="control_decisions",
    time="decided_at",
    metadata="metadata",
    description="one row per decision of the control plane (server or SDK); its time is decided_at",
    fields=_fields(
        Field("requestedModel", "requested_model", "string", empty_is_null=True),
        Field("targetModel", "target_model", "string", empty_is_null=True),
        Field("loadbalanceRuleId", "loadbalance_rule_id", "id", empty_is_null=True),
        Field("ratelimitRuleId", "ratelimit_rule_id", "id", empty_is_null=True),
        Field("budgetRuleId", "budget_rule_id", "id", empty_is_null=True),
        Field("loadbalanceTargetAttemptCount", "loadbalance_target_attempt_count", "integer"),
        Field("configType", "config_type", "string", empty_is_null=True),
        Field("status", "status", "string"),
        Field("projectId", "project_id", "id"),
    ),
)

SOURCES: Mapping[str, DataSource] = {
    name: source
    for source in (TRACES, SPANS, EVALUATIONS, FEEDBACK, CONFIG_METRICS)
    for name in (source.name, *source.aliases)
}
