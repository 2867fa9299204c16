"""``trulayer.eval.requests``: one evaluation to run, from ``POST /v1/eval`` or an eval rule
that matched a new trace; re-enqueued with a later ``not_before`` when a judge could not be
reached (fail-open: the trace is never blocked, the job is not terminal before its last attempt).
The evaluator reads the trace from storage (tenant, project of the envelope, ``trace_id``).

Payload: one :class:`EvalRequest`. Key: the evaluation id, so the attempts of one job stay in
order. Consumers are idempotent on ``(eval_id, attempt)``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from trulayer_common.topics import EVAL_REQUESTS
from trulayer_common.topics.envelope import Envelope, UtcDatetime, decode_envelope

TOPIC = EVAL_REQUESTS
SCHEMA_VERSION = 1


class EvalRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    eval_id: str = Field(min_length=1)
    trace_id: str = Field(min_length=1)
    metric_name: str = Field(min_length=1)
    evaluator_type: Literal["llm", "rule"]
    config: dict[str, Any] = Field(default_factory=dict)
    rule_id: str | None = Field(default=None, description="the eval rule that asked for it; none for POST /v1/eval")
    attempt: int = Field(default=1, ge=1)
    not_before: UtcDatetime | None = Field(default=None, description="run no earlier than this (retry backoff)")
    # Added within version 1.
    created_at: UtcDatetime | None = Field(
        default=None, description="when the evaluation was created (its pending state); default received_at"
    )
    calls: int = Field(default=0, ge=0, description="judge calls made by the earlier attempts")
    skipped: bool = Field(default=False, description="an earlier attempt ended skipped (judge unreachable)")
    model: str = Field(default="", description="the trace's model, when the requester knew it")


EvalRequestEnvelope = Envelope[EvalRequest]


def key(request: EvalRequest) -> bytes:
    return request.eval_id.encode()


def encode(
    request: EvalRequest, *, tenant_id: str, project_id: str, request_id: str, received_at: datetime | None = None
) -> bytes:
    envelope = EvalRequestEnvelope(
        schema_version=SCHEMA_VERSION,
        tenant_id=tenant_id,
        project_id=project_id,
        received_at=received_at or datetime.now(UTC),
        request_id=request_id,
        payload=request,
    )
    return envelope.model_dump_json().encode()


def decode(value: bytes | None) -> EvalRequestEnvelope:
    """The validated envelope; :class:`~trulayer_common.topics.InvalidRecordError` otherwise."""
    return decode_envelope(EvalRequestEnvelope, value, topic=TOPIC, version=SCHEMA_VERSION)
