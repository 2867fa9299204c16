"""Configuration entities. Each record on ``trulayer.config`` is the full current state of one
entity, keyed ``<kind>:<id>``, so log compaction keeps exactly the latest state of each."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from trulayer_common.config.control_entities import KillSwitch, ModelRoute, Policy, SafeDefault

Plan = Literal["starter", "pro", "enterprise"]


class _Entity(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class TenantLimits(BaseModel):
    """Per-tenant overrides of single plan limits; ``None`` keeps the plan's value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    monthly_traces: int | None = Field(default=None, ge=0)
    read_rps: int | None = Field(default=None, ge=0)
    ingest_requests_per_minute: int | None = Field(default=None, ge=0)
    eval_rules: int | None = Field(default=None, ge=0)
    monthly_evals: int | None = Field(default=None, ge=0)


class Tenant(_Entity):
    kind: Literal["tenant"] = "tenant"
    id: str
    name: str
    plan: Plan = "starter"
    limits: TenantLimits | None = None
    created_at: datetime


class Project(_Entity):
    kind: Literal["project"] = "project"
    id: str
    tenant_id: str
    name: str
    archived: bool = False
    retention_days_override: int | None = None
    created_at: datetime


class ApiKey(_Entity):
    """An API key as stored: only the SHA-256 of the secret, never the secret itself.

    Keys are 190+ bits of randomness, so a fast unsalted hash is enough (no dictionary to
    attack) and lets every replica look a key up in O(1).
    """

    kind: Literal["api_key"] = "api_key"
    id: str
    tenant_id: str
    project_id: str
    name: str
    prefix: str
    key_hash: str
    scopes: list[str] = Field(default_factory=lambda: ["ingest", "read"])
    created_at: datetime
    revoked_at: datetime | None = None


AlertMetric = Literal[
    "error_rate",
    "latency_p50",
    "latency_p95",
    "latency_p99",
    "cost_per_call",
    "total_cost",
    "volume",
    "hallucination_score",
    "eval_score",
]
AlertOperator = Literal["gt", "gte", "lt", "lte"]
# The shortest cooldown: the API refuses less, and the alerter applies at least this to rules
# written before the bound existed (a rule with no cooldown fired on every record).
MIN_COOLDOWN_MINUTES = 1.0
AlertSeverity = Literal["low", "medium", "high", "critical"]


class AlertRule(_Entity):
    """A threshold rule evaluated by the alerter over a sliding event-time window.

    Without ``project_id`` it applies to every project of the tenant, each on its own window
    and cooldown; ``model`` narrows the window to traces of that model. A deleted rule stays
    on the log with ``deleted_at`` set (readers drop it), so compaction keeps the deletion.
    """

    kind: Literal["alert_rule"] = "alert_rule"
    id: str
    tenant_id: str
    name: str = ""
    metric: AlertMetric
    metric_name: str | None = None
    operator: AlertOperator
    threshold: float
    window_secs: int = 300
    cooldown_minutes: float = 60.0
    severity: AlertSeverity = "medium"
    project_id: str | None = None
    model: str | None = None
    enabled: bool = True
    created_at: datetime
    updated_at: datetime | None = None
    deleted_at: datetime | None = None


class Webhook(_Entity):
    """A receiver of the tenant's alert events, signed with ``secret`` (kept: the alerter signs)."""

    kind: Literal["webhook"] = "webhook"
    id: str
    tenant_id: str
    url: str
    secret: str
    events: list[str] = Field(default_factory=lambda: ["failure.detected"])
    enabled: bool = True
    created_at: datetime
    deleted_at: datetime | None = None


class EvalRuleFilter(BaseModel):
    """Which traces of the rule's project it evaluates: every field given must be equal.

    ``tags``: a list names tags the trace must carry (list tags, or keys of map tags); a map
    names ``key: value`` pairs (map tags, or ``key:value`` list tags). ``metadata``: top-level
    keys of the trace's metadata with equal (scalar) values.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = None
    name: str | None = None
    tags: list[str] | dict[str, str] | None = None
    metadata: dict[str, str | int | float | bool | None] | None = None


class EvalRule(_Entity):
    """An evaluation run automatically on new traces of one project (the eval-engine samples the
    trace stream). Soft-deleted like alert rules; ``enabled_at`` is when it last became enabled:
    only traces received from then on are evaluated."""

    kind: Literal["eval_rule"] = "eval_rule"
    id: str
    tenant_id: str
    project_id: str
    name: str = ""
    metric_name: str
    evaluator_type: Literal["llm", "rule"]
    config: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True
    sample_rate: float = 1.0
    filter: EvalRuleFilter = EvalRuleFilter()
    created_at: datetime
    enabled_at: datetime | None = None
    updated_at: datetime | None = None
    deleted_at: datetime | None = None


Entity = Annotated[
    Tenant | Project | ApiKey | AlertRule | Webhook | EvalRule | Policy | ModelRoute | KillSwitch | SafeDefault,
    Field(discriminator="kind"),
]


class ConfigRecord(BaseModel):
    """The value of one config log record."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: int = Field(default=1, ge=1)
    entity: Entity
    actor: str = "system"
    at: datetime

    @property
    def key(self) -> str:
        return f"{self.entity.kind}:{self.entity.id}"


def hash_api_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
