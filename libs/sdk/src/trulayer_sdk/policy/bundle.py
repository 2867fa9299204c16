"""The policy bundle as the SDK and the gateway read it: plain, frozen dataclasses.

The gateway serves the bundle as JSON (``GET /v1/control/config``, the SSE stream) and decides
on the very same value parsed by :meth:`PolicyBundle.from_json`, so a server decision and an
SDK's local decision read one shape. Standard library only: the SDK is installable with
``httpx`` and nothing else.

Wire shape (docs/control-plane.md)::

    {"version": int, "killswitch": {"active", "reason", "updated_at", "projects": [{"project_id",
     "reason", "updated_at"}]}, "policies": [...], "model_routes": [...],
     "safe_default": {"enforcement": "deny"|"allow", "routing": "primary_only"},
     "projects": {name: id}, "default_project_id": id | null}

Unknown fields are ignored (a newer gateway may add some). Policies that are not ``active``
and routes that are not ``enabled`` are dropped on parsing: they never decide. A malformed
bundle raises :class:`BundleError`; the caller keeps its previous bundle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

TRIGGERS = ("eval_score", "anomaly", "failure_rate")
POLICY_ACTIONS = ("retry", "fallback_model", "route_pct", "block", "escalate")
CONDITIONS = ("latency_threshold", "error_rate", "cost_threshold", "always")
ROUTE_ACTIONS = ("fallback_model", "block", "log_only")
ANOMALY_TYPES = ("latency_spike", "error_rate_spike", "volume_anomaly")
ENFORCEMENT_DEFAULTS = ("deny", "allow")
DEFAULT_WINDOW_MINUTES = 5


class BundleError(ValueError):
    """A bundle (or one of its entries) that cannot be read."""


def _str(data: Mapping[str, Any], name: str, default: str | None = None) -> str:
    value = data.get(name, default)
    if not isinstance(value, str):
        raise BundleError(f"'{name}' must be a string")
    return value


def _opt_str(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise BundleError(f"'{name}' must be a string or null")
    return value


def _num(data: Mapping[str, Any], name: str, default: float | None = None) -> float | None:
    value = data.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BundleError(f"'{name}' must be a number")
    return float(value)


def _int(data: Mapping[str, Any], name: str, default: int) -> int:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BundleError(f"'{name}' must be an integer")
    return int(value)


def _strings(data: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = data.get(name) or ()
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise BundleError(f"'{name}' must be a list of strings")
    return tuple(value)


def _mapping(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name) or {}
    if not isinstance(value, Mapping):
        raise BundleError(f"'{name}' must be an object")
    return value


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """What a policy watches, where it applies and where it sends traffic.

    Trigger: ``threshold`` (failure_rate: error share 0..1 above which it fires; eval_score:
    average score below which it fires), ``metric_name`` (eval_score), ``anomaly_types``
    (anomaly; empty: all), over the last ``window_minutes`` with at least ``min_requests``
    traces. Scope: ``models`` (requested models; empty: all), ``project_id`` (None: all).
    Action: ``model`` (fallback_model, route_pct) and ``pct`` (route_pct: share of requests
    sent to ``model``).
    """

    threshold: float | None = None
    metric_name: str | None = None
    anomaly_types: tuple[str, ...] = ()
    window_minutes: int = DEFAULT_WINDOW_MINUTES
    min_requests: int = 1
    models: tuple[str, ...] = ()
    project_id: str | None = None
    model: str | None = None
    pct: float | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PolicyRule:
        return cls(
            threshold=_num(data, "threshold"),
            metric_name=_opt_str(data, "metric_name"),
            anomaly_types=_strings(data, "anomaly_types"),
            window_minutes=_int(data, "window_minutes", DEFAULT_WINDOW_MINUTES),
            min_requests=_int(data, "min_requests", 1),
            models=_strings(data, "models"),
            project_id=_opt_str(data, "project_id"),
            model=_opt_str(data, "model"),
            pct=_num(data, "pct"),
        )


@dataclass(frozen=True, slots=True)
class Policy:
    id: str
    name: str
    trigger_type: str
    action_type: str
    rule: PolicyRule
    rollout_pct: float = 100.0
    dry_run: bool = True
    max_retry_depth: int = 3
    max_cascade_depth: int = 5
    priority: int = 100

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Policy:
        return cls(
            id=_str(data, "id"),
            name=_str(data, "name", ""),
            trigger_type=_str(data, "trigger_type"),
            action_type=_str(data, "action_type"),
            rule=PolicyRule.from_json(_mapping(data, "rule")),
            rollout_pct=_num(data, "rollout_pct", 100.0) or 0.0,
            dry_run=bool(data.get("dry_run", True)),
            max_retry_depth=_int(data, "max_retry_depth", 3),
            max_cascade_depth=_int(data, "max_cascade_depth", 5),
            priority=_int(data, "priority", 100),
        )


@dataclass(frozen=True, slots=True)
class RouteCondition:
    type: str
    threshold: float | None = None
    window_minutes: int = DEFAULT_WINDOW_MINUTES


@dataclass(frozen=True, slots=True)
class RouteAction:
    type: str
    model: str | None = None


@dataclass(frozen=True, slots=True)
class ModelRoute:
    id: str
    name: str
    condition: RouteCondition
    action: RouteAction
    priority: int = 100
    models: tuple[str, ...] = ()
    project_id: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelRoute:
        condition = _mapping(data, "condition")
        action = _mapping(data, "action")
        return cls(
            id=_str(data, "id"),
            name=_str(data, "name", ""),
            condition=RouteCondition(
                type=_str(condition, "type"),
                threshold=_num(condition, "threshold"),
                window_minutes=_int(condition, "window_minutes", DEFAULT_WINDOW_MINUTES),
            ),
            action=RouteAction(type=_str(action, "type"), model=_opt_str(action, "model")),
            priority=_int(data, "priority", 100),
            models=_strings(data, "models"),
            project_id=_opt_str(data, "project_id"),
        )


@dataclass(frozen=True, slots=True)
class KillSwitch:
    """Tenant-wide (``active``) and per-project (``projects``: ids of projects switched off)."""

    active: bool = False
    reason: str | None = None
    projects: frozenset[str] = frozenset()

    def blocks(self, project_id: str) -> bool:
        return self.active or project_id in self.projects

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KillSwitch:
        projects = data.get("projects") or []
        if not isinstance(projects, list) or not all(isinstance(p, Mapping) for p in projects):
            raise BundleError("'killswitch.projects' must be a list of objects")
        return cls(
            active=bool(data.get("active", False)),
            reason=_opt_str(data, "reason"),
            projects=frozenset(_str(p, "project_id") for p in projects),
        )


@dataclass(frozen=True, slots=True)
class SafeDefault:
    """What applies without a fresh bundle: ``deny`` blocks every call, ``allow`` lets it through
    to the requested (primary) model; routing is always ``primary_only``."""

    enforcement: str = "deny"
    routing: str = "primary_only"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SafeDefault:
        enforcement = _str(data, "enforcement", "deny")
        if enforcement not in ENFORCEMENT_DEFAULTS:
            enforcement = "deny"  # a value this SDK does not know: the conservative one
        return cls(enforcement=enforcement, routing=_str(data, "routing", "primary_only"))


DENY = SafeDefault("deny")


@dataclass(frozen=True, slots=True)
class PolicyBundle:
    """One tenant's effective policy configuration (only what decides: active policies, enabled
    routes, both sorted by priority then id)."""

    version: int = 0
    killswitch: KillSwitch = KillSwitch()
    policies: tuple[Policy, ...] = ()
    model_routes: tuple[ModelRoute, ...] = ()
    safe_default: SafeDefault = DENY
    projects: Mapping[str, str] = field(default_factory=dict)
    default_project_id: str | None = None

    def project_id(self, requested: str | None) -> str:
        """A project named by id or name, else the caller's own project ("" when unknown)."""
        if requested:
            return self.projects.get(requested, requested)
        return self.default_project_id or ""

    @property
    def window_seconds(self) -> frozenset[int]:
        """The window lengths the bundle's conditions read (for whoever publishes signals)."""
        windows = {p.rule.window_minutes * 60 for p in self.policies}
        windows |= {r.condition.window_minutes * 60 for r in self.model_routes if r.condition.type != "always"}
        return frozenset(windows)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PolicyBundle:
        if not isinstance(data, Mapping):
            raise BundleError("a bundle must be an object")
        raw_policies = data.get("policies", [])
        raw_routes = data.get("model_routes", [])
        if not isinstance(raw_policies, list) or not isinstance(raw_routes, list):
            raise BundleError("'policies' and 'model_routes' must be lists")
        policies = [
            Policy.from_json(p)
            for p in raw_policies
            if isinstance(p, Mapping) and p.get("status", "active") == "active"
        ]
        routes = [ModelRoute.from_json(r) for r in raw_routes if isinstance(r, Mapping) and r.get("enabled", True)]
        projects = _mapping(data, "projects")
        return cls(
            version=_int(data, "version", 0),
            killswitch=KillSwitch.from_json(_mapping(data, "killswitch")),
            policies=tuple(sorted(policies, key=lambda p: (p.priority, p.id))),
            model_routes=tuple(sorted(routes, key=lambda r: (r.priority, r.id))),
            safe_default=SafeDefault.from_json(_mapping(data, "safe_default")),
            projects={str(k): str(v) for k, v in projects.items()},
            default_project_id=_opt_str(data, "default_project_id"),
        )
