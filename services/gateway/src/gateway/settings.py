"""Gateway settings (environment only)."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from trulayer_common.config import PlanCatalog
from trulayer_common.settings import InternalToken, ServiceSettings, SessionSecret


class GatewaySettings(ServiceSettings):
    # Nested settings from the environment: PLANS__STARTER__MONTHLY_TRACES=100000.
    model_config = SettingsConfigDict(env_nested_delimiter="__")

    service_name: str = "gateway"
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    max_body_bytes: int = Field(default=5 * 1024 * 1024, description="ingest bodies above this get 413")
    otlp_max_body_bytes: int = Field(
        default=20 * 1024 * 1024, description="OTLP bodies above this, compressed or decompressed, get 413"
    )
    produce_timeout_seconds: float = Field(default=5.0, description="broker ack wait before answering 503")
    # Clients re-send within seconds to minutes; storage dedups by id forever. The memory is
    # ~75 bytes per id for one to two TTLs: at 10,000 traces/s, 600 s is ~0.9-1.8 GB of Redis.
    dedup_ttl_seconds: int = Field(default=600, description="how long a trace id is remembered to answer 200 duplicate")
    default_retention_days: int = 30

    # Control plane: routes forwarded to the control-engine with the authenticated principal.
    control_engine_url: str = "http://127.0.0.1:8081"
    internal_token: InternalToken = Field(
        default=None, description="shared secret the control-engine requires on forwarded requests"
    )
    control_timeout_seconds: float = 10.0
    control_max_body_bytes: int = 1024 * 1024

    # Dashboard sessions (JWT). RS256 through the issuer's JWKS, or HS256 with a local secret.
    session_jwks_url: str | None = None
    session_hs256_secret: SessionSecret = None
    session_issuer: str | None = Field(default=None, description="required 'iss' (required with a JWKS URL)")
    session_audience: str | None = Field(default=None, description="required 'aud' (required with a JWKS URL)")
    session_tenant_claim: str = "tenant_id"
    session_role_claim: str = "role"
    session_jwks_cache_seconds: int = Field(default=600, description="JWKS kept this long before a refresh")
    session_jwks_min_refresh_seconds: float = Field(
        default=10.0, description="an unknown kid refreshes the JWKS at most this often"
    )
    session_leeway_seconds: int = Field(default=30, description="clock skew tolerated on exp/nbf/iat")

    # Plans, rate limits and quotas (Redis). LIMITS_ENABLED=false serves every request
    # uncounted (a deployment whose limits live in front of it).
    plans: PlanCatalog = PlanCatalog()
    limits_enabled: bool = True
    config_sync_timeout_seconds: float = Field(
        default=5.0, description="catch-up with the config log before a read that must see the caller's writes"
    )

    # Live tail (GET /v1/traces/live): bounded per client, heartbeats on idle streams.
    live_heartbeat_seconds: float = Field(
        default=15.0, gt=0, le=300, description="idle streams get a comment this often"
    )
    live_client_buffer: int = Field(
        default=64,
        ge=1,
        le=10_000,
        description="messages (stored batches) a client may fall behind before it is dropped",
    )
    live_max_clients_per_tenant: int = Field(default=100, ge=1, description="live connections per tenant per gateway")
    live_write_timeout_seconds: float = Field(
        default=10.0, gt=0, description="a live socket that takes no write for this long is dropped"
    )
    live_send_buffer_bytes: int = Field(default=64 * 1024, ge=4096, description="kernel send buffer of a live socket")
    # Ingestion health: outcomes of ingest requests, counted here and flushed to Redis.
    ingest_outcomes_flush_seconds: float = Field(default=5.0, gt=0, le=60)
    # The SDK surface of the control plane (docs/control-plane.md).
    control_stream_heartbeat_seconds: float = Field(default=15.0, gt=0, description="SSE comment after this silence")
    control_stream_write_timeout_seconds: float = Field(default=5.0, gt=0, description="a slower client is dropped")
    control_stream_max_seconds: float = Field(default=3600.0, gt=0, description="a stream ends (and reconnects) after")
    control_stream_max: int = Field(default=5000, ge=1, description="open config streams per replica")
    control_stream_max_per_tenant: int = Field(default=100, ge=1, description="open config streams per tenant")
    control_signals_push_seconds: float = Field(default=1.0, gt=0, description="live signals pushed at most this often")
    decision_log_flush_ms: int = Field(default=100, ge=1, description="server decisions are sent to Kafka this often")
    decision_log_max_pending: int = Field(default=50_000, ge=100, description="server decisions buffered before drops")

    # GuardLayer compatibility (POST /api/v1/api-keys creates a tenant without auth).
    guardlayer_compat: bool = False

    # How current the materialised config log must be to authenticate (revocations reach
    # authentication through it); readiness uses CONFIG_MAX_LAG_SECONDS (ServiceSettings).
    config_max_staleness_seconds: float = Field(
        default=30.0, gt=0, description="authentication fails closed (503) while the config view is older than this"
    )

    @model_validator(mode="after")
    def _check_sessions(self) -> Self:
        if self.session_jwks_url and (not self.session_issuer or not self.session_audience):
            # Any token of any application of the same identity provider would be accepted.
            raise ValueError(
                "SESSION_JWKS_URL needs SESSION_ISSUER and SESSION_AUDIENCE: without them a token the issuer "
                "minted for any other application would open a session here"
            )
        return self
