"""The one decision function: ``decide(bundle, signals, request) -> Decision``.

Shared by the gateway (``POST /v1/control/decide`` and ``/execute``) and the SDK's local
evaluation, so both answer the same question the same way. Pure: no I/O, no clock (the
request carries ``now``), no randomness (rollouts hash the request key). Standard library only.

Order of evaluation (the first enforcing match decides):

1. **Kill switch** (tenant-wide, or the request's project): ``block``, reason ``kill_switch``.
   Over everything, dry-run or not.
2. **Policies**, ``active`` ones, by ``priority`` (lower first) then id. A policy applies to a
   request inside its scope (``rule.models``, ``rule.project_id``) and its rollout (a
   deterministic hash of policy id and request key below ``rollout_pct``), when its trigger
   fires on the live window of the request's project and model:
   ``failure_rate`` error share above ``rule.threshold``; ``eval_score`` average score of
   ``rule.metric_name`` below ``rule.threshold``; ``anomaly`` one of ``rule.anomaly_types``
   detected within the window. Then its action: ``block``; ``fallback_model`` → ``route`` to
   ``rule.model`` (``block`` with ``max_cascade_depth`` once the request already cascaded that
   often); ``route_pct`` → ``route`` ``rule.pct`` % of requests (by key) to ``rule.model``;
   ``retry`` → ``allow`` (retries permitted; ``block`` with ``max_retry_depth`` once the request
   is a retry that deep); ``escalate`` → ``allow``, and the decision fires ``policy.escalated``.
3. **Model routes**, ``enabled`` ones, by ``priority`` then id, in scope (``models``,
   ``project_id``), when the condition holds on the window of ``condition.window_minutes``:
   ``latency_threshold`` p95 latency (ms), ``error_rate`` error share (0..1), ``cost_threshold``
   cost per call, each strictly above ``threshold``; ``always``. Action ``fallback_model`` →
   ``route``, ``block`` → ``block``, ``log_only`` → noted, not enforced.
4. Nothing enforced: ``allow`` to the requested model.

**Dry run**: a dry-run policy that would decide does not; evaluation goes on as if it did not
exist. When nothing else enforces, the answer is ``allow`` naming the first such policy (or
``log_only`` route) with ``dry_run`` true and what it would have done (``would_decision``,
``would_target_model``): that is what gets logged. A window with no data (or too few requests,
or stale) never fires. A policy or route this code does not understand (a newer control plane)
blocks, unless dry-run: fail closed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from trulayer_sdk.policy.bundle import KillSwitch, ModelRoute, Policy, PolicyBundle, SafeDefault
from trulayer_sdk.policy.signals import Signals, WindowStats

DecisionKind = Literal["allow", "block", "route"]
_MEASURED = ("latency_threshold", "error_rate", "cost_threshold")


@dataclass(frozen=True, slots=True)
class DecisionRequest:
    """What is being decided: a call to ``model`` in ``project_id`` (already resolved to an id;
    see :meth:`PolicyBundle.project_id`), keyed by ``request_key`` for rollouts, at ``now``
    (unix seconds). ``retry_depth``: retries of this call so far; ``cascade_depth``: fallbacks
    taken so far."""

    model: str
    project_id: str = ""
    request_key: str = ""
    now: float = 0.0
    retry_depth: int = 0
    cascade_depth: int = 0
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    decision: DecisionKind
    target_model: str | None
    rule_id: str | None
    reason: str
    dry_run: bool = False
    action: str | None = None
    config_type: str | None = None  # killswitch | policy | model_route | safe_default
    would_decision: DecisionKind | None = None
    would_target_model: str | None = None

    @property
    def blocked(self) -> bool:
        return self.decision == "block"

    @property
    def escalates(self) -> bool:
        """Whether this decision fires ``policy.escalated`` (never in a dry run)."""
        return self.action == "escalate" and not self.dry_run

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "target_model": self.target_model,
            "rule_id": self.rule_id,
            "reason": self.reason,
            "dry_run": self.dry_run,
            "action": self.action,
            "config_type": self.config_type,
            "would_decision": self.would_decision,
            "would_target_model": self.would_target_model,
        }


def rollout_bucket(salt: str, key: str) -> float:
    """A deterministic point in [0, 100) for ``key`` under ``salt`` (same key, same point)."""
    digest = hashlib.blake2b(f"{salt}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64 * 100.0


def _in_scope(models: tuple[str, ...], project_id: str | None, request: DecisionRequest) -> bool:
    return (not models or request.model in models) and (project_id is None or project_id == request.project_id)


def _window(signals: Signals, request: DecisionRequest, minutes: int, min_requests: int = 1) -> WindowStats | None:
    stats = signals.window(request.project_id, request.model, minutes * 60, request.now)
    if stats is None or stats.count < max(min_requests, 1):
        return None
    return stats


def _fires(policy: Policy, signals: Signals, request: DecisionRequest) -> bool:
    rule = policy.rule
    trigger = policy.trigger_type
    if trigger == "failure_rate":
        stats = _window(signals, request, rule.window_minutes, rule.min_requests)
        return (
            stats is not None
            and stats.error_rate is not None
            and rule.threshold is not None
            and stats.error_rate > rule.threshold
        )
    if trigger == "eval_score":
        stats = _window(signals, request, rule.window_minutes, 1)
        score = stats.eval_scores.get(rule.metric_name or "") if stats is not None else None
        return score is not None and rule.threshold is not None and score < rule.threshold
    if trigger == "anomaly":
        since = request.now - rule.window_minutes * 60
        found = signals.anomalies(request.project_id)
        wanted = rule.anomaly_types or tuple(found)
        return any(found.get(kind, float("-inf")) >= since for kind in wanted)
    return True  # a trigger this code does not know: assume it fired (fail closed)


def _policy_outcome(policy: Policy, request: DecisionRequest) -> Decision | None:
    """What a fired policy decides; None when it does not apply after all (route_pct split)."""
    rule = policy.rule
    action = policy.action_type

    def out(kind: DecisionKind, target: str | None, reason: str) -> Decision:
        return Decision(kind, target, policy.id, reason, policy.dry_run, action, "policy")

    if action == "block":
        return out("block", None, "policy_block")
    if action == "fallback_model":
        if request.cascade_depth >= policy.max_cascade_depth:
            return out("block", None, "max_cascade_depth")
        return out("route", rule.model, "fallback_model")
    if action == "route_pct":
        if rollout_bucket(f"{policy.id}:split", request.request_key) >= (rule.pct or 0.0):
            return None
        return out("route", rule.model, "route_pct")
    if action == "retry":
        if request.retry_depth >= policy.max_retry_depth:
            return out("block", None, "max_retry_depth")
        return out("allow", request.model, "retry")
    if action == "escalate":
        return out("allow", request.model, "escalate")
    return out("block", None, "unsupported_policy")


def _condition_holds(route: ModelRoute, signals: Signals, request: DecisionRequest) -> bool:
    condition = route.condition
    if condition.type == "always" or condition.type not in _MEASURED:
        return True  # unknown condition types hold: fail closed
    stats = _window(signals, request, condition.window_minutes)
    if stats is None or condition.threshold is None:
        return False
    value = {
        "latency_threshold": stats.latency_p95,
        "error_rate": stats.error_rate,
        "cost_threshold": stats.cost_per_call,
    }[condition.type]
    return value is not None and value > condition.threshold


def _route_outcome(route: ModelRoute, request: DecisionRequest) -> Decision:
    action = route.action.type

    def out(kind: DecisionKind, target: str | None, reason: str, dry_run: bool = False) -> Decision:
        return Decision(kind, target, route.id, reason, dry_run, action, "model_route")

    if action == "fallback_model":
        return out("route", route.action.model, "route_fallback")
    if action == "block":
        return out("block", None, "route_block")
    if action == "log_only":
        return out("allow", request.model, "route_log_only", dry_run=True)
    return out("block", None, "unsupported_route")


def _shadowed(shadow: Decision, request: DecisionRequest) -> Decision:
    """The allow that a non-enforcing match (dry run, log_only) answers, naming what it would do."""
    return replace(
        shadow,
        decision="allow",
        target_model=request.model,
        reason=shadow.reason if shadow.reason == "route_log_only" else f"dry_run:{shadow.reason}",
        dry_run=True,
        would_decision=shadow.decision,
        would_target_model=shadow.target_model,
    )


def kill_switch_decision(killswitch: KillSwitch, request: DecisionRequest) -> Decision | None:
    if not killswitch.blocks(request.project_id):
        return None
    return Decision("block", None, None, "kill_switch", False, "kill_switch", "killswitch")


def decide(bundle: PolicyBundle, signals: Signals, request: DecisionRequest) -> Decision:
    """The decision for ``request`` under ``bundle`` with the live ``signals`` (module docstring)."""
    stopped = kill_switch_decision(bundle.killswitch, request)
    if stopped is not None:
        return stopped
    shadow: Decision | None = None
    for policy in bundle.policies:
        rule = policy.rule
        if not _in_scope(rule.models, rule.project_id, request):
            continue
        if rollout_bucket(policy.id, request.request_key) >= policy.rollout_pct:
            continue
        if not _fires(policy, signals, request):
            continue
        outcome = _policy_outcome(policy, request)
        if outcome is None:
            continue
        if not outcome.dry_run:
            return outcome
        shadow = shadow or outcome
    for route in bundle.model_routes:
        if not _in_scope(route.models, route.project_id, request):
            continue
        if not _condition_holds(route, signals, request):
            continue
        outcome = _route_outcome(route, request)
        if not outcome.dry_run:
            return outcome
        shadow = shadow or outcome
    if shadow is not None:
        return _shadowed(shadow, request)
    return Decision("allow", request.model, None, "no_rule")


def safe_default_decision(
    safe_default: SafeDefault, request: DecisionRequest, killswitch: KillSwitch | None = None
) -> Decision:
    """Without a fresh bundle (control plane unreachable past the TTL, or never reached): the
    kill switch last seen stays on (an outage never releases it), then ``deny`` blocks and
    ``allow`` lets the call through to its primary (requested) model."""
    if killswitch is not None:
        stopped = kill_switch_decision(killswitch, request)
        if stopped is not None:
            return stopped
    if safe_default.enforcement == "allow":
        return Decision("allow", request.model, None, "control_unreachable", False, "primary_only", "safe_default")
    return Decision("block", None, None, "control_unreachable", False, "deny", "safe_default")
