"""Wire shapes of API.md "Feedback and evals": feedback, evaluations, their trends, the catalog
and eval rules. Requests ignore unknown fields (except an evaluator's ``config``, whose fields
are checked against the catalog); responses forbid them, so that additions are deliberate."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from trulayer_common.config.entities import EvalRuleFilter

MAX_COMMENT_CHARS = 10_000
TraceId = Annotated[str, Field(min_length=1, max_length=256)]
MetricName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]
EvaluatorType = Literal["llm", "rule"]
Status = Literal["pending", "running", "complete", "failed", "skipped"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- feedback


class FeedbackCreate(_Request):
    trace_id: TraceId
    label: Literal["good", "bad", "neutral"]
    score: Annotated[float, Field(allow_inf_nan=False, ge=-1e9, le=1e9)] | None = None
    comment: Annotated[str, Field(max_length=MAX_COMMENT_CHARS)] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class FeedbackOut(_Response):
    id: str
    trace_id: str
    project_id: str
    label: str
    score: float | None
    comment: str | None
    metadata: dict[str, Any]
    created_at: str


# --------------------------------------------------------------------------- evaluations


class EvalCreate(_Request):
    trace_id: TraceId
    evaluator_type: EvaluatorType
    metric_name: MetricName
    config: dict[str, Any] = Field(default_factory=dict)


class EvalAccepted(_Response):
    eval_id: str
    status: Literal["pending"]


class JudgeOut(_Response):
    model: str
    input_tokens: int
    output_tokens: int
    cost: float


class JudgeMessageOut(_Response):
    role: str
    content: str


class JudgeDetailOut(JudgeOut):
    prompt: list[JudgeMessageOut] | None = Field(description="the messages the judge was sent")


class EvaluationOut(_Response):
    id: str
    trace_id: str
    project_id: str
    metric_name: str
    evaluator_type: str
    status: Status
    score: float | None
    label: str | None
    reasoning: str | None
    attempts: int
    judge: JudgeOut | None
    created_at: str
    completed_at: str | None
    rule_id: str | None
    error: str | None
    next_attempt_at: str | None


class EvaluationDetail(EvaluationOut):
    judge: JudgeDetailOut | None  # the detail adds the judge's prompt
    config: dict[str, Any]


class EvaluationList(_Response):
    evaluations: list[EvaluationOut]
    next_cursor: str | None
    has_more: bool


class TrendPoint(_Response):
    bucket_start: str
    avg_score: float
    count: int
    pass_rate: float


class TrendSeries(_Response):
    metric_name: str
    points: list[TrendPoint]


class EvalTrends(_Response):
    interval: str
    from_: str = Field(alias="from")  # `from` is a Python keyword
    to: str
    series: list[TrendSeries]


class CatalogEvaluator(_Response):
    name: str
    description: str
    evaluator_type: str
    tags: list[str]
    cost_tier: str
    config_schema: dict[str, Any]
    example_input: dict[str, Any]
    example_output: dict[str, Any]


class EvalCatalog(_Response):
    evaluators: list[CatalogEvaluator]


# --------------------------------------------------------------------------- eval rules

SampleRate = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class EvalRuleFields(_Request):
    """A partial update (PATCH): only the fields sent change."""

    name: Annotated[str, Field(max_length=200)] | None = None
    project_id: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    metric_name: MetricName | None = None
    evaluator_type: EvaluatorType | None = None
    config: dict[str, Any] | None = None
    enabled: bool | None = None
    sample_rate: SampleRate | None = None
    filter: EvalRuleFilter | None = None


class EvalRuleCreate(EvalRuleFields):
    project_id: Annotated[str, Field(min_length=1, max_length=256)]
    metric_name: MetricName
    evaluator_type: EvaluatorType
    config: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True
    sample_rate: SampleRate = 1.0
    filter: EvalRuleFilter = EvalRuleFilter()


class EvalRuleCounters(_Response):
    matched: int
    sampled: int
    evaluated: int
    failed: int
    skipped: int
    last_evaluated_at: str | None


class EvalRuleFilterOut(_Response):
    model: str | None
    name: str | None
    tags: list[str] | dict[str, str] | None
    metadata: dict[str, str | int | float | bool | None] | None


class EvalRuleOut(_Response):
    id: str
    name: str
    project_id: str
    metric_name: str
    evaluator_type: str
    config: dict[str, Any]
    enabled: bool
    sample_rate: float
    filter: EvalRuleFilterOut
    counters: EvalRuleCounters
    created_at: str
    updated_at: str | None


class EvalRuleList(_Response):
    eval_rules: list[EvalRuleOut]
