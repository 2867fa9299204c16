"""``trulayer.feedback``: a user's judgement of one trace (``POST /v1/feedback``).

Payload: one :class:`Feedback`. Key: the trace id, so the feedback of one trace stays in order.
Consumers are idempotent on ``id`` (the ingest-worker stores it keyed by it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from trulayer_common.topics import FEEDBACK
from trulayer_common.topics.envelope import Envelope, UtcDatetime, decode_envelope

TOPIC = FEEDBACK
SCHEMA_VERSION = 1


class Feedback(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1)
    trace_id: str = Field(min_length=1)
    label: Literal["good", "bad", "neutral"]
    score: float | None = None
    comment: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: UtcDatetime
    # Added within version 1.
    retention_days: int | None = Field(default=None, ge=1, description="the project's retention override")


FeedbackEnvelope = Envelope[Feedback]


def key(feedback: Feedback) -> bytes:
    return feedback.trace_id.encode()


def encode(
    feedback: Feedback, *, tenant_id: str, project_id: str, request_id: str, received_at: datetime | None = None
) -> bytes:
    envelope = FeedbackEnvelope(
        schema_version=SCHEMA_VERSION,
        tenant_id=tenant_id,
        project_id=project_id,
        received_at=received_at or datetime.now(UTC),
        request_id=request_id,
        payload=feedback,
    )
    return envelope.model_dump_json().encode()


def decode(value: bytes | None) -> FeedbackEnvelope:
    """The validated envelope; :class:`~trulayer_common.topics.InvalidRecordError` otherwise."""
    return decode_envelope(FeedbackEnvelope, value, topic=TOPIC, version=SCHEMA_VERSION)
