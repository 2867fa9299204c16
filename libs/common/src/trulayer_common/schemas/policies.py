"""Wire shapes of the control plane's configuration (API.md "Control engine"): policies, model
routes, the kill switch and the tenant's safe default.

Requests ignore unknown top-level fields (API.md), but a policy ``rule`` is a small program:
an unknown key in it (a typo like ``treshold``) is refused with 400 naming it rather than
silently widening the policy. Cross-field rules (a fallback needs a model, an ``eval_score``
trigger needs ``metric_name`` and ``threshold``, ...) are checked by the control-engine
(``control_engine.policy_rules``), which names the field too. Responses forbid unknown fields.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from trulayer_common.config.control_entities import KillSwitch, ModelRoute, Policy, SafeDefault

Trigger = Literal["eval_score", "anomaly", "failure_rate"]
PolicyAction = Literal["retry", "fallback_model", "route_pct", "block", "escalate"]
PolicyStatus = Literal["draft", "active", "paused", "archived"]
ConditionType = Literal["latency_threshold", "error_rate", "cost_threshold", "always"]
RouteActionType = Literal["fallback_model", "block", "log_only"]
AnomalyType = Literal["latency_spike", "error_rate_spike", "volume_anomaly"]
Enforcement = Literal["deny", "allow"]
Routing = Literal["primary_only"]

MAX_RULE_YAML_BYTES = 16 * 1024
MAX_WINDOW_MINUTES = 60
Name = Annotated[str, Field(min_length=1, max_length=200)]
ModelName = Annotated[str, Field(min_length=1, max_length=256)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Priority = Annotated[int, Field(ge=0, le=10_000)]
Window = Annotated[int, Field(ge=1, le=MAX_WINDOW_MINUTES)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- policies


class PolicyRuleInput(BaseModel):
    """A policy's ``rule`` (or the mapping its ``rule_yaml`` holds). Which fields each trigger
    and action needs: docs/control-plane.md."""

    model_config = ConfigDict(extra="forbid")

    threshold: Finite | None = Field(
        default=None, description="failure_rate: error share 0..1 above which it fires; eval_score: score below which"
    )
    metric_name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    anomaly_types: list[AnomalyType] = Field(default_factory=list, max_length=3)
    window_minutes: Window = 5
    min_requests: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    models: list[ModelName] = Field(default_factory=list, max_length=50, description="requested models; empty: all")
    project_id: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    model: ModelName | None = Field(default=None, description="fallback_model / route_pct: where traffic goes")
    pct: Annotated[float, Field(ge=0, le=100)] | None = Field(default=None, description="route_pct: share sent")


class PolicyFields(_Request):
    """A partial update: only the fields sent change."""

    name: Name | None = None
    description: Annotated[str, Field(max_length=2000)] | None = None
    trigger_type: Trigger | None = None
    action_type: PolicyAction | None = None
    rule: PolicyRuleInput | None = None
    rule_yaml: Annotated[str, Field(max_length=MAX_RULE_YAML_BYTES)] | None = Field(
        default=None, description="the rule as YAML (a mapping, safe-loaded, no aliases); instead of rule"
    )
    rollout_pct: Annotated[float, Field(ge=0, le=100)] | None = None
    dry_run: bool | None = None
    max_retry_depth: Annotated[int, Field(ge=1, le=10)] | None = None
    max_cascade_depth: Annotated[int, Field(ge=1, le=20)] | None = None
    priority: Priority | None = None
    status: PolicyStatus | None = None


class PolicyCreate(PolicyFields):
    name: Name
    trigger_type: Trigger
    action_type: PolicyAction
    rollout_pct: Annotated[float, Field(ge=0, le=100)] = 100.0
    dry_run: bool = True
    max_retry_depth: Annotated[int, Field(ge=1, le=10)] = 3
    max_cascade_depth: Annotated[int, Field(ge=1, le=20)] = 5
    priority: Priority = 100
    status: PolicyStatus = "active"


class PolicyRuleOut(_Response):
    threshold: float | None
    metric_name: str | None
    anomaly_types: list[str]
    window_minutes: int
    min_requests: int
    models: list[str]
    project_id: str | None
    model: str | None
    pct: float | None


class PolicyOut(_Response):
    id: str
    name: str
    description: str
    trigger_type: str
    action_type: str
    rule: PolicyRuleOut
    rule_yaml: str | None
    rollout_pct: float
    dry_run: bool
    max_retry_depth: int
    max_cascade_depth: int
    priority: int
    status: str
    created_at: str
    updated_at: str | None
    archived_at: str | None


class PolicyList(_Response):
    items: list[PolicyOut]
    next_cursor: str | None
    has_more: bool


# --------------------------------------------------------------------------- model routes


class RouteCondition(_Request):
    type: ConditionType
    threshold: Finite | None = Field(
        default=None, description="latency_threshold: p95 ms; error_rate: share 0..1; cost_threshold: cost per call"
    )
    window_minutes: Window = 5


class RouteAction(_Request):
    type: RouteActionType
    model: ModelName | None = Field(default=None, description="fallback_model: where traffic goes")


class ModelRouteFields(_Request):
    name: Name | None = None
    condition: RouteCondition | None = None
    action: RouteAction | None = None
    priority: Priority | None = None
    enabled: bool | None = None
    models: list[ModelName] | None = Field(default=None, max_length=50, description="requested models; empty: all")
    project_id: Annotated[str, Field(min_length=1, max_length=256)] | None = None


class ModelRouteCreate(ModelRouteFields):
    name: Name
    condition: RouteCondition
    action: RouteAction
    priority: Priority = 100
    enabled: bool = True


class RouteConditionOut(_Response):
    type: str
    threshold: float | None
    window_minutes: int


class RouteActionOut(_Response):
    type: str
    model: str | None


class ModelRouteOut(_Response):
    id: str
    name: str
    condition: RouteConditionOut
    action: RouteActionOut
    priority: int
    enabled: bool
    models: list[str]
    project_id: str | None
    created_at: str
    updated_at: str | None


class ModelRouteList(_Response):
    items: list[ModelRouteOut]
    next_cursor: str | None
    has_more: bool


# --------------------------------------------------------------------------- kill switch, safe default


class KillSwitchChange(_Request):
    """Body of ``POST /v1/control/killswitch/enable|disable`` (optional: the whole tenant)."""

    project_id: Annotated[str, Field(min_length=1, max_length=256)] | None = Field(
        default=None, description="switch one project (id or name) instead of the whole tenant"
    )
    reason: Annotated[str, Field(max_length=500)] | None = None


class KillSwitchProject(_Response):
    project_id: str
    active: bool
    reason: str | None
    updated_at: str
    updated_by: str


class KillSwitchState(_Response):
    active: bool
    reason: str | None
    updated_at: str | None
    updated_by: str | None
    projects: list[KillSwitchProject]


class SafeDefaultBody(_Request):
    enforcement: Enforcement = "deny"
    routing: Routing = "primary_only"


class SafeDefaultOut(_Response):
    enforcement: str
    routing: str
    updated_at: str | None
    updated_by: str | None


# --------------------------------------------------------------------------- entity → answer


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def policy_json(policy: Policy) -> dict[str, Any]:
    """A policy as the API answers it (:class:`PolicyOut`)."""
    return {
        "id": policy.id,
        "name": policy.name,
        "description": policy.description,
        "trigger_type": policy.trigger_type,
        "action_type": policy.action_type,
        "rule": policy.rule.model_dump(),
        "rule_yaml": policy.rule_yaml,
        "rollout_pct": policy.rollout_pct,
        "dry_run": policy.dry_run,
        "max_retry_depth": policy.max_retry_depth,
        "max_cascade_depth": policy.max_cascade_depth,
        "priority": policy.priority,
        "status": policy.status,
        "created_at": policy.created_at.isoformat(),
        "updated_at": _iso(policy.updated_at),
        "archived_at": _iso(policy.archived_at),
    }


def model_route_json(route: ModelRoute) -> dict[str, Any]:
    """A model route as the API answers it (:class:`ModelRouteOut`)."""
    return {
        "id": route.id,
        "name": route.name,
        "condition": route.condition.model_dump(),
        "action": route.action.model_dump(),
        "priority": route.priority,
        "enabled": route.enabled,
        "models": list(route.models),
        "project_id": route.project_id,
        "created_at": route.created_at.isoformat(),
        "updated_at": _iso(route.updated_at),
    }


def killswitch_json(switches: Iterable[KillSwitch]) -> dict[str, Any]:
    """The tenant's kill switches as :class:`KillSwitchState` (projects oldest change first)."""
    tenant: KillSwitch | None = None
    projects: list[KillSwitch] = []
    for switch in switches:
        if switch.project_id is None:
            tenant = switch
        else:
            projects.append(switch)
    projects.sort(key=lambda s: (s.updated_at, s.id))
    return {
        "active": bool(tenant and tenant.active),
        "reason": tenant.reason if tenant else None,
        "updated_at": _iso(tenant.updated_at) if tenant else None,
        "updated_by": tenant.updated_by if tenant else None,
        "projects": [
            {
                "project_id": s.project_id,
                "active": s.active,
                "reason": s.reason,
                "updated_at": s.updated_at.isoformat(),
                "updated_by": s.updated_by,
            }
            for s in projects
        ],
    }


def safe_default_json(safe_default: SafeDefault, *, stored: bool = True) -> dict[str, Any]:
    """:class:`SafeDefaultOut`; ``stored`` False for the implicit default (never set)."""
    return {
        "enforcement": safe_default.enforcement,
        "routing": safe_default.routing,
        "updated_at": safe_default.updated_at.isoformat() if stored else None,
        "updated_by": safe_default.updated_by if stored else None,
    }
