"""Gateway settings (environment only)."""

from __future__ import annotations

from pydantic import Field

from trulayer_common.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    service_name: str = "gateway"
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    max_body_bytes: int = Field(default=5 * 1024 * 1024, description="ingest bodies above this get 413")
    produce_timeout_seconds: float = Field(default=5.0, description="broker ack wait before answering 503")
    dedup_ttl_seconds: int = Field(
        default=3600, description="how long a trace id is remembered to answer 200 duplicate"
    )
    default_retention_days: int = 30
