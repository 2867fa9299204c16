"""The control plane's configuration entities (API.md "Control engine"): policies, model routes,
kill switches and each tenant's safe default, each the full state of one entity on
``trulayer.config`` like every other entity (:mod:`trulayer_common.config.entities`).

Readers are lenient where a newer control-engine may write values this code does not know:
trigger, action and condition types are plain strings here (the request models of
``trulayer_common.schemas.policies`` hold the allowed values), and the decision semantics
treat an unknown one as blocking (fail closed) instead of dropping the record.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class PolicyRuleSpec(_Part):
    """A policy's trigger, scope and action parameters (semantics: ``trulayer_sdk.policy.decisions``)."""

    threshold: float | None = None
    metric_name: str | None = None
    anomaly_types: list[str] = Field(default_factory=list)
    window_minutes: int = 5
    min_requests: int = 1
    models: list[str] = Field(default_factory=list)
    project_id: str | None = None
    model: str | None = None
    pct: float | None = None


class Policy(_Part):
    """A policy. ``DELETE`` archives it (``status`` archived, ``archived_at`` set): it stays
    readable and on the log, and never decides again."""

    kind: Literal["policy"] = "policy"
    id: str
    tenant_id: str
    name: str
    description: str = ""
    trigger_type: str
    action_type: str
    rule: PolicyRuleSpec = PolicyRuleSpec()
    rule_yaml: str | None = None
    rollout_pct: float = 100.0
    dry_run: bool = True
    max_retry_depth: int = 3
    max_cascade_depth: int = 5
    priority: int = 100
    status: str = "active"
    created_at: datetime
    updated_at: datetime | None = None
    archived_at: datetime | None = None


class RouteConditionSpec(_Part):
    type: str
    threshold: float | None = None
    window_minutes: int = 5


class RouteActionSpec(_Part):
    type: str
    model: str | None = None


class ModelRoute(_Part):
    """A routing rule; a deleted route stays on the log with ``deleted_at`` (readers drop it)."""

    kind: Literal["model_route"] = "model_route"
    id: str
    tenant_id: str
    name: str
    condition: RouteConditionSpec
    action: RouteActionSpec
    priority: int = 100
    enabled: bool = True
    models: list[str] = Field(default_factory=list)
    project_id: str | None = None
    created_at: datetime
    updated_at: datetime | None = None
    deleted_at: datetime | None = None


class KillSwitch(_Part):
    """The tenant's kill switch (``project_id`` None; id = tenant id) or one project's (id =
    ``<tenant id>/<project id>``)."""

    kind: Literal["killswitch"] = "killswitch"
    id: str
    tenant_id: str
    project_id: str | None = None
    active: bool
    reason: str | None = None
    updated_at: datetime
    updated_by: str = "system"


class SafeDefault(_Part):
    """What SDKs apply without a fresh bundle: ``enforcement`` deny|allow, ``routing``
    primary_only. One per tenant (id = tenant id); a tenant without one gets deny."""

    kind: Literal["safe_default"] = "safe_default"
    id: str
    tenant_id: str
    enforcement: str = "deny"
    routing: str = "primary_only"
    updated_at: datetime
    updated_by: str = "system"


def killswitch_id(tenant_id: str, project_id: str | None) -> str:
    return tenant_id if project_id is None else f"{tenant_id}/{project_id}"


ControlEntity = Policy | ModelRoute | KillSwitch | SafeDefault
CONTROL_KINDS = ("policy", "model_route", "killswitch", "safe_default")
