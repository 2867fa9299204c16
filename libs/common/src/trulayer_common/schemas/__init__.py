"""Pydantic v2 wire shapes of API.md (the Kafka records are in ``trulayer_common.topics``)."""

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
    "TRACE",
    "BatchRequest",
    "EventRequest",
    "GuardLayerCall",
    "SpanRequest",
    "TraceRequest",
    "batch_items",
    "batch_too_large",
    "call_to_trace",
    "fold_guardlayer_fields",
]
