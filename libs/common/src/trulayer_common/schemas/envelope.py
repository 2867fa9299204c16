"""The Kafka record envelope: ``{schema_version, tenant_id, project_id, received_at, request_id, payload}``.

One ``trulayer.traces`` record carries the traces of one ingest request (≤100): the gateway
has already resolved every trace's project and filled every id, so the record is replayable
byte for byte and its rows are keyed identically on redelivery.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from trulayer_common.schemas.ingest import TraceRequest

SCHEMA_VERSION = 1


class TraceBatchPayload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    kind: Literal["traces"] = "traces"
    traces: list[TraceRequest]


class Envelope(BaseModel):
    model_config = ConfigDict(extra="ignore")

    schema_version: int = SCHEMA_VERSION
    tenant_id: str
    project_id: str
    received_at: datetime
    request_id: str
    payload: TraceBatchPayload
    # Projects of this record with a retention override (days); others get the worker's default.
    retention_days: dict[str, int] = Field(default_factory=dict)
