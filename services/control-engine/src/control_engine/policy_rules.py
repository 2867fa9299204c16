"""Validation of policy rules and model routes beyond their field types: pure, no I/O.

* ``rule_yaml`` is loaded with PyYAML's safe loader, refusing aliases (a billion-laughs
  document expands exponentially once serialised), bounded in size
  (:data:`~trulayer_common.schemas.policies.MAX_RULE_YAML_BYTES`) and in nesting (a deep
  document is a ``RecursionError`` in the composer), and must be a mapping; it is then
  validated exactly like a structured ``rule`` (unknown keys refused).
* What each trigger and action needs (docs/control-plane.md): ``failure_rate`` a
  ``threshold`` share 0..1; ``eval_score`` a ``metric_name`` and a ``threshold`` 0..1;
  ``fallback_model`` a ``model``; ``route_pct`` a ``model`` and a ``pct``. Routes: a
  ``threshold`` unless ``always`` (``error_rate``: 0..1; latency and cost: ≥ 0), and a
  ``model`` for ``fallback_model``.

Every problem is a :class:`RuleError` naming the field (``rule.model``, ``rule_yaml``,
``rule_yaml.threshold``, ``condition.threshold``): 422 for a missing value, 400 otherwise.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ValidationError

from trulayer_common.errors import ApiError
from trulayer_common.schemas.policies import MAX_RULE_YAML_BYTES, PolicyRuleInput, RouteAction, RouteCondition


class RuleError(ValueError):
    def __init__(self, field: str, message: str, status: int = 400) -> None:
        super().__init__(f"Invalid field '{field}': {message}")
        self.field = field
        self.message = message
        self.status = status

    def api_error(self) -> ApiError:
        return ApiError(
            self.status,
            str(self),
            "validation_error",
            extra={"details": [{"field": self.field, "message": self.message}]},
        )


class _NoAliasLoader(yaml.SafeLoader):  # type: ignore[misc]
    """The safe loader, refusing anchors' aliases."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("aliases are not allowed")
        return super().compose_node(parent, index)


def parse_rule_yaml(text: str) -> dict[str, Any]:
    """The mapping ``text`` holds; :class:`RuleError` on ``rule_yaml`` otherwise."""
    if len(text.encode()) > MAX_RULE_YAML_BYTES:
        raise RuleError("rule_yaml", f"larger than {MAX_RULE_YAML_BYTES} bytes")
    try:
        value = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        raise RuleError("rule_yaml", f"not valid YAML: {problem}"[:300]) from None
    except RecursionError:
        raise RuleError("rule_yaml", "nested too deeply") from None
    except (ValueError, TypeError, OverflowError) as exc:  # a scalar its tag cannot build (2001-13-45)
        raise RuleError("rule_yaml", f"not valid YAML: {exc}"[:300]) from None
    if not isinstance(value, dict):
        raise RuleError("rule_yaml", f"must be a mapping, not {type(value).__name__}")
    if not all(isinstance(k, str) for k in value):
        raise RuleError("rule_yaml", "keys must be strings")
    return value


def rule_from_yaml(text: str) -> PolicyRuleInput:
    """``rule_yaml`` validated as a rule; errors name ``rule_yaml.<field>``."""
    mapping = parse_rule_yaml(text)
    try:
        return PolicyRuleInput.model_validate(mapping)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in error["loc"])
        status = 422 if error["type"] == "missing" else 400
        raise RuleError(f"rule_yaml.{where}" if where else "rule_yaml", error["msg"], status) from None


def resolve_rule(rule: PolicyRuleInput | None, rule_yaml: str | None) -> tuple[PolicyRuleInput, str]:
    """The rule given either way, and the field name its errors go under."""
    if rule is not None and rule_yaml is not None:
        raise RuleError("rule_yaml", "give either rule or rule_yaml, not both")
    if rule_yaml is not None:
        return rule_from_yaml(rule_yaml), "rule_yaml"
    return rule or PolicyRuleInput(), "rule"


def _share(field: str, value: float | None, what: str) -> None:
    if value is None:
        raise RuleError(field, f"required for {what}", 422)
    if not 0.0 <= value <= 1.0:
        raise RuleError(field, f"must be a share between 0 and 1 for {what}")


def check_policy(trigger: str, action: str, rule: PolicyRuleInput, where: str = "rule") -> None:
    """What the trigger and the action need from the rule."""
    if trigger == "failure_rate":
        _share(f"{where}.threshold", rule.threshold, "trigger_type failure_rate")
    elif trigger == "eval_score":
        if not rule.metric_name:
            raise RuleError(f"{where}.metric_name", "required for trigger_type eval_score", 422)
        _share(f"{where}.threshold", rule.threshold, "trigger_type eval_score")
    if action in ("fallback_model", "route_pct") and not rule.model:
        raise RuleError(f"{where}.model", f"required for action_type {action}", 422)
    if action == "route_pct" and rule.pct is None:
        raise RuleError(f"{where}.pct", "required for action_type route_pct", 422)


def check_route(condition: RouteCondition, action: RouteAction) -> None:
    if condition.type != "always":
        if condition.threshold is None:
            raise RuleError("condition.threshold", f"required for condition type {condition.type}", 422)
        if condition.type == "error_rate":
            _share("condition.threshold", condition.threshold, "condition type error_rate")
        elif condition.threshold < 0:
            raise RuleError("condition.threshold", "must be ≥ 0")
    if action.type == "fallback_model" and not action.model:
        raise RuleError("action.model", "required for action type fallback_model", 422)
