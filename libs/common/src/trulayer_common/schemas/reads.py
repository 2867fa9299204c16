"""Response models of the read endpoints added with the read path (API.md "Read"):
``GET /v1/ingestion-health``. (``/v1/traces/export`` streams CSV or JSON lines and
``/v1/traces/live`` Server-Sent Events: their rows and frames are documented in docs/reads.md.)"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IngestRequests(_Response):
    total: int
    accepted: int
    rejected: int
    success_rate: float | None = Field(description="accepted / total, 0..1; null without requests")
    error_rate: float | None


class IngestError(_Response):
    status: int
    code: str | None
    count: int


class IngestLag(_Response):
    p50: float | None = Field(description="ms from the gateway's receipt to storage, within 1 %")
    p95: float | None
    p99: float | None
    max: float | None


class DeadLetterCounts(_Response):
    in_window: int
    total: int = Field(description="dead letters of the tenant kept (30 days)")


class IngestionHealth(_Response):
    window: str
    from_: str = Field(alias="from")
    to: str
    project_id: str | None
    requests: IngestRequests = Field(description="ingest requests answered, counted per tenant")
    top_errors: list[IngestError]
    traces_stored: int
    ingest_lag_ms: IngestLag
    dead_letters: DeadLetterCounts
    last_trace_at: str | None
