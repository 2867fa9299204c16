"""Alert rules and webhooks (API.md "Alerts"): ``/v1/alerts`` and ``/v1/failure-rules`` over one
resource, ``/v1/webhooks`` with a signed test delivery.

Both shapes are accepted: TruLayer's ``threshold`` and GuardLayer's ``threshold_value`` (a
number or a numeric string); answers carry both. ``PUT`` and ``PATCH`` are partial updates
(GuardLayer's ``PUT`` changes only the fields sent). Validation errors name the field.
Reads of rules and alert events are the gateway's (``gateway.alerting_reads``); writes go
through :class:`TenantWrites` (serialised, audited). The alerter picks every change up from
the config log without a restart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from control_engine.requests import ControlPrincipal, principal_of
from control_engine.resources import (
    outbound_key,
    reader_key,
    secret_box_key,
    settings_key,
    synced_state,
    tenant_write,
)
from control_engine.tenants import new_id
from trulayer_common.config import ConfigState
from trulayer_common.config.entities import AlertRule, Webhook
from trulayer_common.errors import ApiError, bad_request, forbidden, not_found, unavailable
from trulayer_common.http import json_response, read_json_model
from trulayer_common.outbound import check_destination, masked_url
from trulayer_common.routing import path_param
from trulayer_common.schemas.control import AlertRuleCreate, AlertRuleFields, WebhookCreate, alert_rule_json
from trulayer_common.secret_box import SecretUnavailableError, webhook_secret_context
from trulayer_common.webhook_signature import DELIVERY_HEADER, EVENT_HEADER, signed_headers

MAX_RULES_PER_TENANT = 100
MAX_WEBHOOKS_PER_TENANT = 20
NULLABLE_RULE_FIELDS = frozenset({"metric_name", "project_id", "model"})


def sees_full_urls(principal: ControlPrincipal) -> bool:
    """For Slack-style hooks the URL is the credential: only owners signed in to the dashboard see it."""
    return principal.kind == "session" and principal.role == "owner"


def webhook_json(hook: Webhook, *, full_url: bool) -> dict[str, Any]:
    """Never the secret, nor any character of it (it was chosen by the caller who sent it);
    the URL masked to scheme and host unless ``full_url``."""
    return {
        "id": hook.id,
        "url": hook.url if full_url else masked_url(hook.url),
        "url_masked": not full_url,
        "events": hook.events,
        "enabled": hook.enabled,
        "created_at": hook.created_at.isoformat(),
    }


def _check_rule(state: ConfigState, tenant_id: str, rule: AlertRule) -> None:
    if rule.metric == "eval_score" and not rule.metric_name:
        raise ApiError(
            422,
            "Invalid field 'metric_name': required when metric is eval_score",
            "validation_error",
            extra={"details": [{"field": "metric_name", "message": "required when metric is eval_score"}]},
        )
    if rule.project_id is not None:
        project = state.projects.get(rule.project_id)
        if project is None or project.tenant_id != tenant_id:
            raise bad_request(f"Invalid field 'project_id': unknown project '{rule.project_id}'", "validation_error")


def _rule_of(state: ConfigState, tenant_id: str, rule_id: str) -> AlertRule:
    rule = state.alert_rules.get(rule_id)
    if rule is None:
        raise not_found(f"Alert rule '{rule_id}' not found")
    if rule.tenant_id != tenant_id:
        raise forbidden("Alert rule belongs to another tenant")
    return rule


async def create_rule(request: web.Request) -> web.Response:
    principal = principal_of(request)
    body = await read_json_model(request, AlertRuleCreate, request.app[settings_key].max_body_bytes)
    async with tenant_write(request, principal) as tx:
        if len(tx.state.alert_rules_of(principal.tenant_id)) >= MAX_RULES_PER_TENANT:
            raise ApiError(409, f"At most {MAX_RULES_PER_TENANT} alert rules per tenant", "limit_reached")
        fields = body.model_dump(exclude_none=True)
        rule = AlertRule(id=new_id(), tenant_id=principal.tenant_id, created_at=datetime.now(UTC), **fields)
        _check_rule(tx.state, principal.tenant_id, rule)
        await tx.commit(rule, "alert_rule.create")
    return json_response(alert_rule_json(rule), status=201)


async def update_rule(request: web.Request) -> web.Response:
    principal = principal_of(request)
    body = await read_json_model(request, AlertRuleFields, request.app[settings_key].max_body_bytes)
    async with tenant_write(request, principal) as tx:
        rule = _rule_of(tx.state, principal.tenant_id, path_param(request, "rule_id"))
        # Fields sent as null clear the optional scopes; absent fields stay as they are.
        changes = {k: getattr(body, k) for k in body.model_fields_set}
        for name, value in changes.items():
            if value is None and name not in NULLABLE_RULE_FIELDS:
                raise bad_request(f"Invalid field '{name}': may not be null", "validation_error")
        rule = rule.model_copy(update={**changes, "updated_at": datetime.now(UTC)})
        rule = AlertRule.model_validate(rule.model_dump())
        _check_rule(tx.state, principal.tenant_id, rule)
        await tx.commit(rule, "alert_rule.update")
    return json_response(alert_rule_json(rule))


async def delete_rule(request: web.Request) -> web.Response:
    principal = principal_of(request)
    async with tenant_write(request, principal) as tx:
        rule = _rule_of(tx.state, principal.tenant_id, path_param(request, "rule_id"))
        await tx.commit(rule.model_copy(update={"deleted_at": datetime.now(UTC)}), "alert_rule.delete")
    return json_response({"message": "Alert rule deleted.", "id": rule.id})


def _webhook_of(state: ConfigState, tenant_id: str, webhook_id: str) -> Webhook:
    hook = state.webhooks.get(webhook_id)
    if hook is None:
        raise not_found(f"Webhook '{webhook_id}' not found")
    if hook.tenant_id != tenant_id:
        raise forbidden("Webhook belongs to another tenant")
    return hook


async def list_webhooks(request: web.Request) -> web.Response:
    principal = principal_of(request)
    state = await synced_state(request)
    hooks = sorted(state.webhooks_of(principal.tenant_id), key=lambda h: (h.created_at, h.id))
    full = sees_full_urls(principal)
    return json_response({"webhooks": [webhook_json(h, full_url=full) for h in hooks]})


async def create_webhook(request: web.Request) -> web.Response:
    """Registration checks the destination now (every delivery checks it again at connect
    time) and seals the secret before it goes on the config log."""
    principal = principal_of(request)
    body = await read_json_model(request, WebhookCreate, request.app[settings_key].max_body_bytes)
    url = str(body.url)
    refusal = await check_destination(url, request.app[outbound_key].policy)
    if refusal is not None:
        raise bad_request(
            f"Invalid field 'url': {refusal}", "validation_error", details=[{"field": "url", "message": refusal}]
        )
    async with tenant_write(request, principal) as tx:
        if len(tx.state.webhooks_of(principal.tenant_id)) >= MAX_WEBHOOKS_PER_TENANT:
            raise ApiError(409, f"At most {MAX_WEBHOOKS_PER_TENANT} webhooks per tenant", "limit_reached")
        webhook_id = new_id()
        sealed = request.app[secret_box_key].seal(body.secret, webhook_secret_context(principal.tenant_id, webhook_id))
        hook = Webhook(
            id=webhook_id,
            tenant_id=principal.tenant_id,
            url=url,
            secret=sealed,
            events=body.events,
            enabled=body.enabled,
            created_at=datetime.now(UTC),
        )
        await tx.commit(hook, "webhook.create")
    # The creator just sent the URL: it is shown back to them whole, this once.
    return json_response(webhook_json(hook, full_url=True), status=201)


async def delete_webhook(request: web.Request) -> web.Response:
    principal = principal_of(request)
    async with tenant_write(request, principal) as tx:
        hook = _webhook_of(tx.state, principal.tenant_id, path_param(request, "webhook_id"))
        await tx.commit(hook.model_copy(update={"deleted_at": datetime.now(UTC)}), "webhook.delete")
    return json_response({"message": "Webhook deleted.", "id": hook.id})


async def test_webhook(request: web.Request) -> web.Response:
    """One signed ``webhook.test`` delivery, now, without retries, through the SSRF guard;
    answers with its outcome's category (``delivered``, ``http_error`` with the status class,
    ``timeout``, ``refused_destination``, ``connection_failed``, ``invalid_url``), never the
    receiver's text or a connection error."""
    principal = principal_of(request)
    hook = _webhook_of(request.app[reader_key].state, principal.tenant_id, path_param(request, "webhook_id"))
    try:
        secret = request.app[secret_box_key].open(hook.secret, webhook_secret_context(hook.tenant_id, hook.id))
    except SecretUnavailableError as exc:
        raise unavailable("The webhook's secret cannot be opened with the configured keys", 5) from exc
    delivery_id = new_id()
    payload = orjson.dumps(
        {
            "event": "webhook.test",
            "id": delivery_id,
            "created_at": datetime.now(UTC).isoformat(),
            "data": {"webhook_id": hook.id, "tenant_id": hook.tenant_id},
        }
    )
    headers = {**signed_headers(secret, payload), EVENT_HEADER: "webhook.test", DELIVERY_HEADER: delivery_id}
    headers["Content-Type"] = "application/json"
    result = await request.app[outbound_key].post(hook.url, payload, headers)
    return json_response(
        {
            "webhook_id": hook.id,
            "delivered": result.delivered,
            "outcome": result.outcome,
            "status_class": result.status_class,
            "duration_ms": round(result.duration_ms, 2),
        }
    )


HANDLERS = {
    **{f"{label}.create": create_rule for label in ("alerts", "failure_rules")},
    **{f"{label}.replace": update_rule for label in ("alerts", "failure_rules")},
    **{f"{label}.update": update_rule for label in ("alerts", "failure_rules")},
    **{f"{label}.delete": delete_rule for label in ("alerts", "failure_rules")},
    "webhooks.list": list_webhooks,
    "webhooks.create": create_webhook,
    "webhooks.delete": delete_webhook,
    "webhooks.test": test_webhook,
}
