"""``trulayer.eval.results``: states of evaluations (API.md ``Evaluation``), written by the gateway
(``pending``, at ``POST /v1/eval``) and the eval-engine (``pending`` for a rule's LLM evaluation,
then ``running``, ``complete``, ``failed``, ``skipped``); stored by the ingest-worker, alerted on
by the alerter.

Version 2 (this one): the payload is an :class:`EvaluationBatch` ``{"evaluations": [...]}``
(≤ :data:`MAX_BATCH`): an eval rule at sample rate 1.0 evaluates every trace, and one record
per evaluation would cost more than the evaluation. Version 1 carried one :class:`Evaluation`
as the payload; :func:`decode` still reads it, as a batch of one.

Each state carries ``version`` (:func:`state_version`): the attempt and the status's rank, so
later states of one evaluation have higher versions whatever topic order they arrived in.
Storage keeps the highest version per ``id``; consumers do the same. Key: the first
evaluation's id (a batch of one keeps an evaluation's states on one partition).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trulayer_common.topics import EVAL_RESULTS
from trulayer_common.topics.envelope import (
    Envelope,
    InvalidRecordError,
    UtcDatetime,
    decode_envelope,
)

TOPIC = EVAL_RESULTS
SCHEMA_VERSION = 2
MAX_BATCH = 1000
Status = Literal["pending", "running", "complete", "failed", "skipped"]
_RANK: dict[str, int] = {"pending": 0, "running": 1, "skipped": 2, "failed": 3, "complete": 3}


def state_version(attempt: int, status: str) -> int:
    """The version of a state: ``attempt × 10 + rank`` (pending 0, running 1, skipped 2,
    failed/complete 3). A ``pending`` made before any attempt has attempt 0."""
    return attempt * 10 + _RANK[status]


class JudgeMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: str
    content: str


class Judge(BaseModel):
    """The LLM judge that produced the score, what it was asked and what it cost."""

    model_config = ConfigDict(extra="ignore")

    model: str
    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cost: float = Field(default=0.0, ge=0)
    prompt: list[JudgeMessage] | None = Field(default=None, description="the messages sent to the judge")


class Evaluation(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1)
    trace_id: str = Field(min_length=1)
    project_id: str = Field(min_length=1)
    metric_name: str = Field(min_length=1)
    evaluator_type: Literal["llm", "rule"]
    status: Status
    score: float | None = Field(default=None, ge=0, le=1, description="1 is always the good end")
    label: Literal["pass", "fail", "warn"] | None = None
    reasoning: str | None = None
    attempts: int = Field(default=0, ge=0, description="judge calls made (1 for a deterministic evaluator)")
    judge: Judge | None = None
    created_at: UtcDatetime
    completed_at: UtcDatetime | None = None
    model: str = Field(default="", description="the evaluated trace's model (empty when it had none)")
    # Added in version 2.
    rule_id: str | None = Field(default=None, description="the eval rule that asked for it; none for POST /v1/eval")
    error: str | None = Field(default=None, description="why it failed or was skipped")
    next_attempt_at: UtcDatetime | None = Field(
        default=None, description="skipped and re-enqueued: when it runs again (none once terminal)"
    )
    config: dict[str, Any] = Field(default_factory=dict, description="the evaluator's configuration")
    version: int = Field(default=0, ge=0, description="state_version(attempt, status): the highest wins")
    updated_at: UtcDatetime | None = Field(default=None, description="when this state was produced")
    retention_days: int | None = Field(default=None, ge=1, description="the project's retention override")


class EvaluationBatch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    evaluations: list[Evaluation] = Field(min_length=1, max_length=MAX_BATCH)


EvaluationEnvelope = Envelope[EvaluationBatch]
_V1Envelope = Envelope[Evaluation]


def key(evaluations: list[Evaluation]) -> bytes:
    return evaluations[0].id.encode()


def encode(
    evaluations: list[Evaluation],
    *,
    tenant_id: str,
    request_id: str = "",
    received_at: datetime | None = None,
) -> bytes:
    """One record for ``evaluations`` (1..MAX_BATCH, all of ``tenant_id``; the envelope's project
    is the first one's)."""
    envelope = EvaluationEnvelope(
        schema_version=SCHEMA_VERSION,
        tenant_id=tenant_id,
        project_id=evaluations[0].project_id,
        received_at=received_at or datetime.now(UTC),
        request_id=request_id,
        payload=EvaluationBatch(evaluations=evaluations),
    )
    return envelope.model_dump_json().encode()


def decode(value: bytes | None) -> EvaluationEnvelope:
    """The validated envelope (a version 1 record as a batch of one);
    :class:`~trulayer_common.topics.InvalidRecordError` otherwise."""
    try:
        return decode_envelope(EvaluationEnvelope, value, topic=TOPIC, version=SCHEMA_VERSION)
    except InvalidRecordError as error:
        try:
            old = _V1Envelope.model_validate_json(value or b"")
        except ValidationError:
            raise error from None
        if old.schema_version != 1:
            raise
    return EvaluationEnvelope(
        schema_version=1,
        tenant_id=old.tenant_id,
        project_id=old.project_id,
        received_at=old.received_at,
        request_id=old.request_id,
        payload=EvaluationBatch(evaluations=[old.payload]),
    )
