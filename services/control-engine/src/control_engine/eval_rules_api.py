"""Eval rules (API.md "Feedback and evals"): ``GET|POST /v1/eval-rules``, ``GET|PATCH|DELETE
/v1/eval-rules/{rule_id}``.

A rule evaluates new traces of one project with one evaluator of the catalog
(``trulayer_common.evals.catalog``), checked here (400 naming the field or the catalog), on a
deterministic sample of the traces that pass its filter. Writes go through
:class:`TenantWrites` (serialised per tenant, on a caught-up state), which is what makes the
plan's cap race-free: a create over ``eval_rules`` is ``402 eval_rules_quota_exceeded`` however
many creates run at once. The eval-engine picks every change up from the config log.

Each rule is answered with its counters (``matched, sampled, evaluated, failed, skipped,
last_evaluated_at``), read from Redis (:mod:`trulayer_common.evals.counters`); with Redis
down the rules are still listed, with zero counters and a warning in the log.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from control_engine.plan_gate import require_below_cap
from control_engine.projects import tenant_of
from control_engine.requests import principal_of
from control_engine.resources import reader_key, redis_key, settings_key, tenant_write
from control_engine.tenants import new_id
from trulayer_common.config import ConfigState
from trulayer_common.config.entities import EvalRule
from trulayer_common.errors import ApiError, bad_request, forbidden, not_found, unavailable
from trulayer_common.evals.catalog import CATALOG_PATH, InvalidConfigError, UnknownMetricError, resolve
from trulayer_common.evals.counters import RuleCounters, zero_counters
from trulayer_common.http import json_response, read_json_model
from trulayer_common.logging import get_logger
from trulayer_common.routing import path_param
from trulayer_common.schemas.evals import EvalRuleCreate, EvalRuleFields

log = get_logger(__name__)
MAX_RULES_PER_TENANT = 100  # for plans without a cap: a bound on what one tenant costs the engine
NULLABLE = frozenset({"name"})


def eval_rule_json(rule: EvalRule, counters: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.name,
        "project_id": rule.project_id,
        "metric_name": rule.metric_name,
        "evaluator_type": rule.evaluator_type,
        "config": rule.config,
        "enabled": rule.enabled,
        "sample_rate": rule.sample_rate,
        "filter": rule.filter.model_dump(),
        "counters": counters,
        "created_at": rule.created_at.isoformat(),
        "updated_at": rule.updated_at.isoformat() if rule.updated_at else None,
    }


async def _counters(request: web.Request, rules: list[EvalRule]) -> dict[str, dict[str, Any]]:
    try:
        return await RuleCounters(request.app[redis_key]).read(r.id for r in rules)
    except RedisError as exc:
        log.warning("eval_rule_counters_unavailable", error=repr(exc))
        return {r.id: zero_counters() for r in rules}


def _checked(state: ConfigState, tenant_id: str, rule: EvalRule) -> EvalRule:
    """The rule with its project resolved (id or name) and its evaluator and config checked."""
    project = state.project_of_tenant(tenant_id, rule.project_id)
    if project is None:
        raise bad_request(f"Invalid field 'project_id': unknown project '{rule.project_id}'", "validation_error")
    try:
        resolve(rule.metric_name, rule.evaluator_type, rule.config)
    except UnknownMetricError as exc:
        raise ApiError(400, str(exc), "unknown_metric", extra={"catalog": CATALOG_PATH}) from None
    except InvalidConfigError as exc:
        raise ApiError(
            400, str(exc), "validation_error", extra={"details": [{"field": exc.field, "message": str(exc)}]}
        ) from None
    return rule if project.id == rule.project_id else rule.model_copy(update={"project_id": project.id})


def _rule_of(state: ConfigState, tenant_id: str, rule_id: str) -> EvalRule:
    rule = state.eval_rules.get(rule_id)
    if rule is None:
        raise not_found(f"Eval rule '{rule_id}' not found")
    if rule.tenant_id != tenant_id:
        raise forbidden("Eval rule belongs to another tenant")
    return rule


async def list_rules(request: web.Request) -> web.Response:
    principal = principal_of(request)
    reader = request.app[reader_key]
    try:
        await reader.sync(request.app[settings_key].config_sync_timeout_seconds)
    except TimeoutError as exc:
        raise unavailable("Configuration log is not reachable; retry", 2) from exc
    rules = sorted(reader.state.eval_rules_of(principal.tenant_id), key=lambda r: (r.created_at, r.id))
    counters = await _counters(request, rules)
    return json_response({"eval_rules": [eval_rule_json(r, counters[r.id]) for r in rules]})


async def get_rule(request: web.Request) -> web.Response:
    principal = principal_of(request)
    reader = request.app[reader_key]
    try:
        await reader.sync(request.app[settings_key].config_sync_timeout_seconds)
    except TimeoutError as exc:
        raise unavailable("Configuration log is not reachable; retry", 2) from exc
    rule = _rule_of(reader.state, principal.tenant_id, path_param(request, "rule_id"))
    counters = await _counters(request, [rule])
    return json_response(eval_rule_json(rule, counters[rule.id]))


async def create_rule(request: web.Request) -> web.Response:
    principal = principal_of(request)
    settings = request.app[settings_key]
    body = await read_json_model(request, EvalRuleCreate, settings.max_body_bytes)
    async with tenant_write(request, principal) as tx:
        tenant = tenant_of(tx.state, principal)
        current = len(tx.state.eval_rules_of(tenant.id))
        cap = settings.plans.for_tenant(tenant).eval_rules
        require_below_cap(cap, current, "eval_rules_quota_exceeded", f"Eval rule limit of the {tenant.plan} plan")
        if current >= MAX_RULES_PER_TENANT:
            raise ApiError(409, f"At most {MAX_RULES_PER_TENANT} eval rules per tenant", "limit_reached")
        now = datetime.now(UTC)
        rule = EvalRule(
            id=new_id(),
            tenant_id=tenant.id,
            created_at=now,
            enabled_at=now if body.enabled else None,
            name=body.name or "",
            project_id=body.project_id,
            metric_name=body.metric_name,
            evaluator_type=body.evaluator_type,
            config=body.config,
            enabled=body.enabled,
            sample_rate=body.sample_rate,
            filter=body.filter,
        )
        rule = _checked(tx.state, tenant.id, rule)
        await tx.commit(rule, "eval_rule.create")
    return json_response(eval_rule_json(rule, zero_counters()), status=201)


async def update_rule(request: web.Request) -> web.Response:
    principal = principal_of(request)
    body = await read_json_model(request, EvalRuleFields, request.app[settings_key].max_body_bytes)
    async with tenant_write(request, principal) as tx:
        rule = _rule_of(tx.state, principal.tenant_id, path_param(request, "rule_id"))
        changes: dict[str, Any] = {k: getattr(body, k) for k in body.model_fields_set}
        for name, value in changes.items():
            if value is None and name not in NULLABLE:
                raise bad_request(f"Invalid field '{name}': may not be null", "validation_error")
        if changes.get("name", "") is None:
            changes["name"] = ""
        now = datetime.now(UTC)
        if changes.get("enabled") and not rule.enabled:
            changes["enabled_at"] = now  # traces received while it was disabled are not evaluated
        rule = EvalRule.model_validate({**rule.model_dump(), **changes, "updated_at": now})
        rule = _checked(tx.state, principal.tenant_id, rule)
        await tx.commit(rule, "eval_rule.update")
    counters = await _counters(request, [rule])
    return json_response(eval_rule_json(rule, counters[rule.id]))


async def delete_rule(request: web.Request) -> web.Response:
    principal = principal_of(request)
    async with tenant_write(request, principal) as tx:
        rule = _rule_of(tx.state, principal.tenant_id, path_param(request, "rule_id"))
        await tx.commit(rule.model_copy(update={"deleted_at": datetime.now(UTC)}), "eval_rule.delete")
    return json_response({"message": "Eval rule deleted.", "id": rule.id})


HANDLERS = {
    "eval_rules.list": list_rules,
    "eval_rules.get": get_rule,
    "eval_rules.create": create_rule,
    "eval_rules.update": update_rule,
    "eval_rules.delete": delete_rule,
}
