"""``trulayer.eval.results``: the state of one evaluation (an API.md ``Evaluation``), written by
the eval-engine each time it changes; stored by the ingest-worker, alerted on by the alerter.

Payload: one :class:`Evaluation`. Key: the evaluation id, so the states of one evaluation stay
in order and the last one wins. Consumers are idempotent on ``(id, status, attempts)``; storage
keeps the latest state per ``id``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from trulayer_common.topics import EVAL_RESULTS
from trulayer_common.topics.envelope import Envelope, UtcDatetime, decode_envelope

TOPIC = EVAL_RESULTS
SCHEMA_VERSION = 1


class Judge(BaseModel):
    """The LLM judge that produced the score, and what it cost."""

    model_config = ConfigDict(extra="ignore")

    model: str
    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cost: float = Field(default=0.0, ge=0)


class Evaluation(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1)
    trace_id: str = Field(min_length=1)
    project_id: str = Field(min_length=1)
    metric_name: str = Field(min_length=1)
    evaluator_type: Literal["llm", "rule"]
    status: Literal["pending", "running", "complete", "failed", "skipped"]
    score: float | None = Field(default=None, ge=0, le=1, description="1 is always the good end")
    label: Literal["pass", "fail", "warn"] | None = None
    reasoning: str | None = None
    attempts: int = Field(default=0, ge=0)
    judge: Judge | None = None
    created_at: UtcDatetime
    completed_at: UtcDatetime | None = None
    model: str = Field(default="", description="the evaluated trace's model (empty when it had none)")


EvaluationEnvelope = Envelope[Evaluation]


def key(evaluation: Evaluation) -> bytes:
    return evaluation.id.encode()


def encode(
    evaluation: Evaluation, *, tenant_id: str, request_id: str = "", received_at: datetime | None = None
) -> bytes:
    envelope = EvaluationEnvelope(
        schema_version=SCHEMA_VERSION,
        tenant_id=tenant_id,
        project_id=evaluation.project_id,
        received_at=received_at or datetime.now(UTC),
        request_id=request_id,
        payload=evaluation,
    )
    return envelope.model_dump_json().encode()


def decode(value: bytes | None) -> EvaluationEnvelope:
    """The validated envelope; :class:`~trulayer_common.topics.InvalidRecordError` otherwise."""
    return decode_envelope(EvaluationEnvelope, value, topic=TOPIC, version=SCHEMA_VERSION)
