"""Response models of API.md. The gateway builds its bodies as plain dicts on the hot path;
these models are the contract: they generate the OpenAPI document and the integration tests
validate real responses against them, so the two cannot drift apart."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trulayer_common.schemas.evals import EvaluationOut, FeedbackOut


class _Response(BaseModel):
    # Clients must ignore unknown fields; the contract tests forbid them so additions are deliberate.
    model_config = ConfigDict(extra="forbid")


class ErrorBody(_Response):
    error: str
    code: str | None = None
    request_id: str | None = None
    details: list[dict[str, str]] | None = None
    parameter: str | None = None
    retry_after_seconds: int | None = None
    # 429 monthly_quota_exceeded and 413 too_many_items say what the bound was and what was asked.
    limit: int | None = None
    used: int | None = None
    requested: int | None = None
    resets_at: str | None = None
    items: int | None = None
    # 402 plan and eval quotas, 400 unknown metric.
    required_plan: str | None = None
    catalog: str | None = Field(default=None, description="unknown metric: where the evaluator catalog is")
    # 403 error.policy_blocked names the rule that blocked.
    rule_id: str | None = None


class IngestResponse(_Response):
    id: str
    created_at: str
    status: str


class DuplicateResponse(_Response):
    status: str
    id: str


class BatchCall(_Response):
    id: str
    created_at: str


class BatchIngestResponse(_Response):
    ingested: int
    ids: list[str]
    duplicates: int
    calls: list[BatchCall] | None = None


class SpanOut(_Response):
    id: str
    parent_span_id: str | None
    name: str
    type: str
    input: Any
    output: Any
    model: str | None
    latency_ms: float | None
    cost: float | None
    error: str | None
    prompt_tokens: int
    completion_tokens: int
    metadata: dict[str, Any]
    start_time: str | None
    end_time: str | None


class EventOut(_Response):
    id: str
    span_id: str | None
    level: str
    message: str
    metadata: dict[str, Any]
    timestamp: str


class TraceOut(_Response):
    id: str
    project_id: str
    session_id: str | None
    external_id: str | None
    name: str | None
    input: Any
    output: Any
    model: str | None
    latency_ms: float | None
    cost: float | None
    error: str | None
    status: str
    failure_type: str | None
    prompt_tokens: int
    completion_tokens: int
    total_token_count: int
    tags: list[str] | dict[str, str]
    metadata: Any
    started_at: str
    ended_at: str | None
    created_at: str
    span_count: int


class TraceDetail(TraceOut):
    spans: list[SpanOut]
    events: list[EventOut]
    feedback: list[FeedbackOut]
    evaluations: list[EvaluationOut]


class TraceList(_Response):
    traces: list[TraceOut]
    next_cursor: str | None
    has_more: bool


class ModelBreakdown(_Response):
    model: str | None
    calls: int
    avg_latency_ms: float | None
    total_tokens: int
    cost_usd: str
    errors: int


class StatusBreakdown(_Response):
    status: str
    count: int


class TimelinePoint(_Response):
    hour: str
    calls: int
    avg_latency_ms: float | None
    cost_usd: str
    errors: int


class MetricsResponse(_Response):
    total_traces: int
    error_count: int
    error_rate: float
    p50_latency_ms: float | None
    p95_latency_ms: float | None
    p99_latency_ms: float | None
    total_cost: float
    total_tokens: int
    from_: str | None = Field(default=None, alias="from")  # `from` is a Python keyword
    to: str | None
    # With ?hours=N: GuardLayer's shape as well.
    period_hours: float | None = None
    since: str | None = None
    total_calls: int | None = None
    avg_latency_ms: float | None = None
    total_cost_usd: str | None = None
    total_tokens_in: int | None = None
    total_tokens_out: int | None = None
    by_model: list[ModelBreakdown] | None = None
    by_status: list[StatusBreakdown] | None = None
    timeline: list[TimelinePoint] | None = None
