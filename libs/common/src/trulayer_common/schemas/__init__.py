"""Pydantic v2 wire shapes of API.md and the Kafka envelope."""

from trulayer_common.schemas.envelope import POINTS_HEADER, Envelope, TraceBatchPayload, alert_points, trace_envelope
from trulayer_common.schemas.ingest import (
    BATCH,
    BATCH_TOO_LARGE,
    MAX_BATCH,
    TRACE,
    BatchRequest,
    EventRequest,
    GuardLayerCall,
    SpanRequest,
    TraceRequest,
    batch_items,
    batch_too_large,
    call_to_trace,
    fold_guardlayer_fields,
)

__all__ = [
    "BATCH",
    "BATCH_TOO_LARGE",
    "MAX_BATCH",
    "POINTS_HEADER",
    "TRACE",
    "BatchRequest",
    "Envelope",
    "EventRequest",
    "GuardLayerCall",
    "SpanRequest",
    "TraceBatchPayload",
    "TraceRequest",
    "alert_points",
    "batch_items",
    "batch_too_large",
    "call_to_trace",
    "fold_guardlayer_fields",
    "trace_envelope",
]
