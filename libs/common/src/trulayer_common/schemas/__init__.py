"""Pydantic v2 wire models of API.md and the Kafka envelope."""

from trulayer_common.schemas.envelope import Envelope, TraceBatchPayload
from trulayer_common.schemas.ingest import (
    MAX_BATCH,
    BatchRequest,
    EventRequest,
    GuardLayerCall,
    SpanRequest,
    TraceRequest,
)

__all__ = [
    "MAX_BATCH",
    "BatchRequest",
    "Envelope",
    "EventRequest",
    "GuardLayerCall",
    "SpanRequest",
    "TraceBatchPayload",
    "TraceRequest",
]
