"""Wire shapes of the control-plane routes (API.md "Tenancy and keys", "Alerts").

The control-engine validates requests with these models and builds its answers in these
shapes; the gateway documents them in ``/openapi.json`` (it forwards these routes), and the
integration tests validate real answers against them. Unknown request fields are ignored;
response models forbid unknown fields so that additions are deliberate.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator

from trulayer_common.access import DEFAULT_KEY_SCOPES, Scope
from trulayer_common.config.entities import MIN_COOLDOWN_MINUTES, AlertMetric, AlertOperator, AlertRule, AlertSeverity
from trulayer_common.webhook_signature import MIN_SECRET_CHARS

MAX_WINDOW_SECS = 3600
WEBHOOK_EVENTS = ("failure.detected", "anomaly.detected", "policy.escalated")


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- projects


class _ProjectBody(_Request):
    @field_validator("name", mode="before", check_fields=False)
    @classmethod
    def _strip(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value


class ProjectCreate(_ProjectBody):
    name: str = Field(min_length=1, max_length=100)
    retention_days_override: int | None = Field(default=None, ge=1, le=3650)


class ProjectPatch(_ProjectBody):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    retention_days_override: int | None = Field(default=None, ge=1, le=3650)


class ProjectOut(_Response):
    id: str
    name: str
    archived: bool
    retention_days_override: int | None
    created_at: str


class ProjectList(_Response):
    projects: list[ProjectOut]


# --------------------------------------------------------------------------- API keys


class ApiKeyCreate(_Request):
    name: str = Field(min_length=1, max_length=100)
    project_id: str | None = Field(
        default=None, max_length=256, description="the key's own project; default: the oldest active"
    )
    scopes: list[Scope] = Field(default_factory=lambda: list(DEFAULT_KEY_SCOPES), min_length=1, max_length=4)


class ApiKeyOut(_Response):
    id: str
    name: str
    prefix: str
    project_id: str
    scopes: list[str]
    created_at: str
    revoked_at: str | None
    last_used_at: str | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="the secret, shown once")


class ApiKeyList(_Response):
    api_keys: list[ApiKeyOut]


class GuardLayerKeyRequest(_Request):
    customer_name: str = Field(min_length=1, max_length=200)


class GuardLayerKeyResponse(_Response):
    message: str
    api_key: str
    key_id: str
    key_prefix: str
    customer_name: str
    tenant_id: str
    project_id: str
    created_at: str
    default_alerts_created: int


# --------------------------------------------------------------------------- alert rules

Threshold = Annotated[float, Field(allow_inf_nan=False)]
_THRESHOLD = AliasChoices("threshold", "threshold_value")


class AlertRuleFields(_Request):
    """A partial update (PUT and PATCH alike change only the fields sent)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: Annotated[str, Field(max_length=200)] | None = None
    metric: AlertMetric | None = None
    metric_name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    operator: AlertOperator | None = None
    threshold: Threshold | None = Field(default=None, validation_alias=_THRESHOLD)
    window_secs: Annotated[int, Field(ge=10, le=MAX_WINDOW_SECS)] | None = None
    cooldown_minutes: Annotated[float, Field(ge=MIN_COOLDOWN_MINUTES, le=7 * 24 * 60, allow_inf_nan=False)] | None = (
        None
    )
    severity: AlertSeverity | None = None
    project_id: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    model: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    enabled: bool | None = None


class AlertRuleCreate(AlertRuleFields):
    metric: AlertMetric
    operator: AlertOperator
    threshold: Threshold = Field(validation_alias=_THRESHOLD)


class AlertRuleOut(_Response):
    id: str
    name: str
    metric: str
    metric_name: str | None
    operator: str
    threshold: float
    threshold_value: float
    window_secs: int
    cooldown_minutes: float
    severity: str
    project_id: str | None
    model: str | None
    enabled: bool
    created_at: str
    updated_at: str | None


class AlertEventOut(_Response):
    id: str
    rule_id: str
    project_id: str
    metric: str
    operator: str
    threshold_value: float
    metric_value: float
    severity: str
    model: str | None
    triggered_at: str
    notification_sent: bool


class AlertRuleList(_Response):
    rules: list[AlertRuleOut]
    recent_events: list[AlertEventOut]


class Deleted(_Response):
    message: str
    id: str


# --------------------------------------------------------------------------- webhooks


class WebhookCreate(_Request):
    url: Annotated[AnyHttpUrl, Field(max_length=2048)]
    secret: Annotated[str, Field(min_length=MIN_SECRET_CHARS, max_length=256)]
    events: Annotated[list[str], Field(min_length=1, max_length=10)] = Field(
        default_factory=lambda: ["failure.detected"]
    )
    enabled: bool = True

    @field_validator("events")
    @classmethod
    def _known_events(cls, events: list[str]) -> list[str]:
        unknown = [e for e in events if e not in WEBHOOK_EVENTS]
        if unknown:
            raise ValueError(f"unknown event {unknown[0]!r}; expected one of {', '.join(WEBHOOK_EVENTS)}")
        return sorted(set(events))


class WebhookOut(_Response):
    """No character of the secret, ever; the URL masked to ``scheme://host/…`` except for owners
    signed in to the dashboard (for Slack-style hooks the URL is a credential)."""

    id: str
    url: str
    url_masked: bool
    events: list[str]
    enabled: bool
    created_at: str


class WebhookList(_Response):
    webhooks: list[WebhookOut]


class WebhookTestResult(_Response):
    """The category of the test send's outcome, never the receiver's text or a connection error."""

    webhook_id: str
    delivered: bool
    outcome: Literal["delivered", "http_error", "timeout", "refused_destination", "connection_failed", "invalid_url"]
    status_class: str | None = Field(description="2xx..5xx when the receiver answered")
    duration_ms: float


# --------------------------------------------------------------------------- anomalies (gateway reads)


class AnomalyOut(_Response):
    id: str
    project_id: str
    type: str
    metric: str
    severity: str
    observed_value: float
    baseline_mean: float
    baseline_std: float
    z_score: float
    window_start: str
    window_end: str
    detected_at: str


class AnomalyList(_Response):
    anomalies: list[AnomalyOut]


def alert_rule_json(rule: AlertRule) -> dict[str, Any]:
    """An alert rule as the API answers it (:class:`AlertRuleOut`): TruLayer's ``threshold`` and
    GuardLayer's ``threshold_value`` both."""
    return {
        "id": rule.id,
        "name": rule.name,
        "metric": rule.metric,
        "metric_name": rule.metric_name,
        "operator": rule.operator,
        "threshold": rule.threshold,
        "threshold_value": rule.threshold,
        "window_secs": rule.window_secs,
        "cooldown_minutes": rule.cooldown_minutes,
        "severity": rule.severity,
        "project_id": rule.project_id,
        "model": rule.model,
        "enabled": rule.enabled,
        "created_at": rule.created_at.isoformat(),
        "updated_at": rule.updated_at.isoformat() if rule.updated_at else None,
    }
