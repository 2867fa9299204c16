"""Policy rules and routes beyond field types: safe YAML, and what each trigger and action needs."""

from __future__ import annotations

import pytest

from control_engine.pages import decode_cursor, encode_cursor, page
from control_engine.policy_rules import RuleError, check_policy, check_route, parse_rule_yaml, resolve_rule
from trulayer_common.errors import ApiError
from trulayer_common.schemas.policies import MAX_RULE_YAML_BYTES, PolicyRuleInput, RouteAction, RouteCondition


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("threshold: [0.5", "not valid YAML"),
        ("- a\n- b\n", "must be a mapping"),
        ("just text", "must be a mapping"),
        ("", "must be a mapping"),
        ("a: &x [1, 2]\nb: *x\n", "aliases are not allowed"),
        ("1: 2\n", "keys must be strings"),
        ("!!python/object/apply:os.system ['true']", "not valid YAML"),
        ("a: " + "[" * 5000 + "]" * 5000, ""),
        ("threshold: 2001-13-45\n", "not valid YAML"),
        ("threshold: !!int 0x\n", "not valid YAML"),
        ("threshold: 0.5\n" + "#" * MAX_RULE_YAML_BYTES, "larger than"),
    ],
)
def test_bad_yaml_is_refused_naming_rule_yaml(text: str, why: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_rule_yaml(text)
    assert caught.value.field == "rule_yaml" and why in caught.value.message
    error = caught.value.api_error()
    assert isinstance(error, ApiError) and error.status == 400 and "'rule_yaml'" in error.error


def test_yaml_rules_validate_like_structured_ones() -> None:
    rule, where = resolve_rule(None, "threshold: 0.3\nwindow_minutes: 10\nmodels: [a, b]\n")
    assert where == "rule_yaml" and rule == PolicyRuleInput(threshold=0.3, window_minutes=10, models=["a", "b"])
    with pytest.raises(RuleError) as caught:
        resolve_rule(None, "threshold: 0.3\nwindow_minutes: 0\n")
    assert caught.value.field == "rule_yaml.window_minutes" and caught.value.status == 400
    with pytest.raises(RuleError) as caught:
        resolve_rule(PolicyRuleInput(threshold=0.1), "threshold: 0.3\n")
    assert caught.value.field == "rule_yaml"
    assert resolve_rule(None, None) == (PolicyRuleInput(), "rule")


@pytest.mark.parametrize(
    ("trigger", "action", "rule", "field", "status"),
    [
        ("failure_rate", "block", {}, "rule.threshold", 422),
        ("failure_rate", "block", {"threshold": 1.5}, "rule.threshold", 400),
        ("eval_score", "block", {"threshold": 0.5}, "rule.metric_name", 422),
        ("eval_score", "block", {"metric_name": "m"}, "rule.threshold", 422),
        ("anomaly", "fallback_model", {}, "rule.model", 422),
        ("anomaly", "route_pct", {"model": "m"}, "rule.pct", 422),
    ],
)
def test_what_triggers_and_actions_need(trigger: str, action: str, rule: dict, field: str, status: int) -> None:
    with pytest.raises(RuleError) as caught:
        check_policy(trigger, action, PolicyRuleInput(**rule))
    assert (caught.value.field, caught.value.status) == (field, status)


def test_complete_rules_pass() -> None:
    check_policy("failure_rate", "retry", PolicyRuleInput(threshold=0.2))
    check_policy("eval_score", "escalate", PolicyRuleInput(metric_name="relevance", threshold=0.7))
    check_policy("anomaly", "route_pct", PolicyRuleInput(model="m", pct=10))
    check_route(RouteCondition(type="always"), RouteAction(type="block"))
    check_route(RouteCondition(type="latency_threshold", threshold=800), RouteAction(type="fallback_model", model="m"))


@pytest.mark.parametrize(
    ("condition", "action", "field"),
    [
        ({"type": "error_rate", "threshold": 2}, {"type": "block"}, "condition.threshold"),
        ({"type": "cost_threshold"}, {"type": "block"}, "condition.threshold"),
        ({"type": "latency_threshold", "threshold": -1}, {"type": "block"}, "condition.threshold"),
        ({"type": "always"}, {"type": "fallback_model"}, "action.model"),
    ],
)
def test_routes_need(condition: dict, action: dict, field: str) -> None:
    with pytest.raises(RuleError) as caught:
        check_route(RouteCondition(**condition), RouteAction(**action))
    assert caught.value.field == field


def test_pages_follow_priority_then_id() -> None:
    items = [(p, i) for p, i in [(2, "b"), (1, "z"), (2, "a"), (3, "c")]]
    first = page(items, lambda x: x, lambda x: x[1], {"limit": "2"})
    assert first["items"] == ["z", "a"] and first["has_more"]
    second = page(items, lambda x: x, lambda x: x[1], {"limit": "2", "cursor": first["next_cursor"]})
    assert second == {"items": ["b", "c"], "next_cursor": None, "has_more": False}
    assert decode_cursor(encode_cursor((7, "x"))) == (7, "x")
    for bad in ("!!", "WyJ4Il0", "bnVsbA"):
        with pytest.raises(ApiError):
            decode_cursor(bad)
