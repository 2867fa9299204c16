"""Control-engine settings (environment only)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from trulayer_common.config import PlanCatalog
from trulayer_common.settings import InternalToken, ServiceSettings, SessionSecret


class ControlEngineSettings(ServiceSettings):
    # Nested settings from the environment: PLANS__STARTER__EVAL_RULES=5.
    model_config = SettingsConfigDict(env_nested_delimiter="__")

    service_name: str = "control-engine"
    control_host: str = "127.0.0.1"
    control_port: int = 8081
    internal_token: InternalToken = Field(
        default=None, description="shared secret required on every request forwarded by the gateway"
    )
    plans: PlanCatalog = PlanCatalog()
    max_body_bytes: int = 1024 * 1024
    guardlayer_compat: bool = Field(
        default=False, description="serve GuardLayer's unauthenticated key creation (the gateway's setting too)"
    )

    # Serialising a tenant's config writes across control-engine replicas (Redis lock).
    tenant_lock_ttl_seconds: float = Field(default=15.0, description="a crashed holder's lock expires after this")
    tenant_lock_wait_seconds: float = Field(default=10.0, description="wait for a busy tenant before 503")
    config_sync_timeout_seconds: float = Field(default=5.0, description="catch-up with the config log before a write")
    webhook_test_timeout_seconds: float = Field(default=5.0, gt=0, description="total time of one webhook test send")

    # Local session tokens (`trulayer sessions token`): the gateway's HS256 settings.
    session_hs256_secret: SessionSecret = None
    session_issuer: str | None = None
    session_audience: str | None = None
    session_tenant_claim: str = "tenant_id"
    session_role_claim: str = "role"
