"""``/v1/policies``: list, create, get, update, archive (API.md "Control engine").

Writes are members' sessions, reads any session or an API key with ``read`` (the declared
access of ``trulayer_common.control_api``). Writes go through :class:`TenantWrites`
(serialised, checked on a caught-up state, audited); reads catch up with the config log first,
so a caller reads its own writes. ``DELETE`` archives: the policy stays readable (``status``
archived) and never decides again. A policy's ``rule`` comes structured or as ``rule_yaml``
(``control_engine.policy_rules``); a rule scoped to a project names one of the tenant's (by id
or name; stored as the id). At most :data:`MAX_POLICIES_PER_TENANT` policies that are not
archived (409 ``limit_reached``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from control_engine.pages import bad_param, page
from control_engine.policy_rules import RuleError, check_policy, resolve_rule
from control_engine.requests import principal_of
from control_engine.resources import reader_key, settings_key, tenant_write
from control_engine.tenants import new_id
from trulayer_common.config import ConfigState
from trulayer_common.config.control_entities import Policy, PolicyRuleSpec
from trulayer_common.errors import ApiError, bad_request, forbidden, not_found, unavailable
from trulayer_common.http import json_response, read_json_model
from trulayer_common.routing import path_param
from trulayer_common.schemas.policies import PolicyCreate, PolicyFields, PolicyRuleInput, policy_json

MAX_POLICIES_PER_TENANT = 200
STATUSES = ("draft", "active", "paused", "archived")
_NOT_NULL = frozenset(PolicyFields.model_fields) - {"description", "rule", "rule_yaml"}


async def caught_up(request: web.Request) -> ConfigState:
    """The config state after catching up with the log (read-your-writes)."""
    reader = request.app[reader_key]
    try:
        await reader.sync(request.app[settings_key].config_sync_timeout_seconds)
    except TimeoutError as exc:
        raise unavailable("Configuration log is not reachable; retry", 2) from exc
    return reader.state


def resolve_project(state: ConfigState, tenant_id: str, id_or_name: str | None, field: str) -> str | None:
    """The id of the tenant's project named by id or name; 400 naming ``field`` when unknown."""
    if id_or_name is None:
        return None
    project = state.project_of_tenant(tenant_id, id_or_name)
    if project is None:
        raise bad_request(f"Invalid field '{field}': unknown project '{id_or_name}'", "validation_error")
    return project.id


def _rule_spec(state: ConfigState, tenant_id: str, rule: PolicyRuleInput, where: str) -> PolicyRuleSpec:
    fields = rule.model_dump()
    fields["project_id"] = resolve_project(state, tenant_id, rule.project_id, f"{where}.project_id")
    return PolicyRuleSpec(**fields)


def _policy_of(state: ConfigState, tenant_id: str, policy_id: str) -> Policy:
    policy = state.control.of(tenant_id).policies.get(policy_id)
    if policy is None:
        if state.control.owner("policy", policy_id) is not None:
            raise forbidden("Policy belongs to another tenant")
        raise not_found(f"Policy '{policy_id}' not found")
    return policy


async def list_policies(request: web.Request) -> web.Response:
    principal = principal_of(request)
    state = await caught_up(request)
    wanted = request.query.get("status")
    if wanted is not None and wanted not in STATUSES:
        raise bad_param("status", f"expected one of {', '.join(STATUSES)}")
    policies = [
        p
        for p in state.control.of(principal.tenant_id).policies.values()
        if (p.status == wanted if wanted else p.status != "archived")
    ]
    return json_response(page(policies, lambda p: (p.priority, p.id), policy_json, request.query))


async def get_policy(request: web.Request) -> web.Response:
    principal = principal_of(request)
    state = await caught_up(request)
    return json_response(policy_json(_policy_of(state, principal.tenant_id, path_param(request, "policy_id"))))


async def create_policy(request: web.Request) -> web.Response:
    principal = principal_of(request)
    body = await read_json_model(request, PolicyCreate, request.app[settings_key].max_body_bytes)
    try:
        rule, where = resolve_rule(body.rule, body.rule_yaml)
        check_policy(body.trigger_type, body.action_type, rule, where)
    except RuleError as exc:
        raise exc.api_error() from None
    async with tenant_write(request, principal) as tx:
        live = [p for p in tx.state.control.of(principal.tenant_id).policies.values() if p.status != "archived"]
        if len(live) >= MAX_POLICIES_PER_TENANT:
            raise ApiError(409, f"At most {MAX_POLICIES_PER_TENANT} policies per tenant", "limit_reached")
        now = datetime.now(UTC)
        policy = Policy(
            id=new_id(),
            tenant_id=principal.tenant_id,
            name=body.name,
            description=body.description or "",
            trigger_type=body.trigger_type,
            action_type=body.action_type,
            rule=_rule_spec(tx.state, principal.tenant_id, rule, where),
            rule_yaml=body.rule_yaml,
            rollout_pct=body.rollout_pct,
            dry_run=body.dry_run,
            max_retry_depth=body.max_retry_depth,
            max_cascade_depth=body.max_cascade_depth,
            priority=body.priority,
            status=body.status,
            created_at=now,
            archived_at=now if body.status == "archived" else None,
        )
        await tx.commit(policy, "policy.create")
    return json_response(policy_json(policy), status=201)


def _changes(body: PolicyFields) -> dict[str, Any]:
    changes = {k: getattr(body, k) for k in body.model_fields_set}
    for name, value in changes.items():
        if value is None and name in _NOT_NULL:
            raise bad_request(f"Invalid field '{name}': may not be null", "validation_error")
    return changes


async def update_policy(request: web.Request) -> web.Response:
    principal = principal_of(request)
    body = await read_json_model(request, PolicyFields, request.app[settings_key].max_body_bytes)
    changes = _changes(body)
    async with tenant_write(request, principal) as tx:
        policy = _policy_of(tx.state, principal.tenant_id, path_param(request, "policy_id"))
        update: dict[str, Any] = {k: v for k, v in changes.items() if k not in ("rule", "rule_yaml")}
        try:
            if changes.get("rule") is not None or changes.get("rule_yaml") is not None:
                rule, where = resolve_rule(changes.get("rule"), changes.get("rule_yaml"))
                update["rule_yaml"] = changes.get("rule_yaml")
            else:
                rule, where = PolicyRuleInput.model_validate(policy.rule.model_dump()), "rule"
            trigger = update.get("trigger_type", policy.trigger_type)
            action = update.get("action_type", policy.action_type)
            check_policy(trigger, action, rule, where)
        except RuleError as exc:
            raise exc.api_error() from None
        now = datetime.now(UTC)
        update["rule"] = _rule_spec(tx.state, principal.tenant_id, rule, where)
        update["updated_at"] = now
        if "description" in update and update["description"] is None:
            update["description"] = ""
        if update.get("status") == "archived" and policy.status != "archived":
            update["archived_at"] = now
        elif "status" in update and update["status"] != "archived":
            update["archived_at"] = None
        policy = Policy.model_validate({**policy.model_dump(), **update})
        await tx.commit(policy, "policy.update")
    return json_response(policy_json(policy))


async def archive_policy(request: web.Request) -> web.Response:
    principal = principal_of(request)
    async with tenant_write(request, principal) as tx:
        policy = _policy_of(tx.state, principal.tenant_id, path_param(request, "policy_id"))
        if policy.status != "archived":
            now = datetime.now(UTC)
            policy = policy.model_copy(update={"status": "archived", "archived_at": now, "updated_at": now})
            await tx.commit(policy, "policy.archive")
    return json_response(policy_json(policy))


HANDLERS = {
    "policies.list": list_policies,
    "policies.create": create_policy,
    "policies.get": get_policy,
    "policies.update": update_policy,
    "policies.archive": archive_policy,
}
