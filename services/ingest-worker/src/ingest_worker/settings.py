"""Ingest-worker settings (environment only)."""

from __future__ import annotations

from pydantic import Field

from trulayer_common.settings import ServiceSettings


class IngestWorkerSettings(ServiceSettings):
    service_name: str = "ingest-worker"
    worker_group_id: str = "trulayer-ingest-worker"
    worker_host: str = "127.0.0.1"
    worker_port: int = 8082
    batch_max_traces: int = Field(default=10_000, description="flush when this many traces are pending")
    batch_max_wait_ms: int = Field(default=400, description="flush at the latest this long after the first pending")
    dlq_max_per_minute: int = Field(default=1_000, description="more dead letters than this stops the consumer")
    default_retention_days: int = 30
