"""Alert rules and webhooks (API.md "Alerts"): ``/v1/alerts`` and ``/v1/failure-rules`` over one
resource, ``/v1/webhooks`` with a signed test delivery.

Both shapes are accepted: TruLayer's ``threshold`` and GuardLayer's ``threshold_value`` (a
number or a numeric string); answers carry both. ``PUT`` and ``PATCH`` are partial updates
(GuardLayer's ``PUT`` changes only the fields sent). Validation errors name the field.
``GET /v1/alerts`` is assembled here: the rules from this replica's config state (read after
a sync with the log, so a caller reads its own writes) and the tenant's most recent alert
events from ClickHouse. Writes go through :class:`TenantWrites` (serialised, audited).
The alerter picks every change up from the config log without a restart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from aiohttp import web
from pydantic import AliasChoices, AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator

from control_engine.requests import ControlPrincipal, principal_of
from control_engine.resources import (
    clickhouse_key,
    outbound_key,
    reader_key,
    secret_box_key,
    settings_key,
    synced_state,
    tenant_write,
)
from control_engine.tenants import new_id
from trulayer_common.config import ConfigState
from trulayer_common.config.entities import (
    MIN_COOLDOWN_MINUTES,
    AlertMetric,
    AlertOperator,
    AlertRule,
    AlertSeverity,
    Webhook,
)
from trulayer_common.errors import ApiError, bad_request, forbidden, not_found, unavailable
from trulayer_common.http import json_response, read_json_model
from trulayer_common.outbound import check_destination, masked_url
from trulayer_common.secret_box import SecretUnavailableError, webhook_secret_context
from trulayer_common.webhook_signature import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    MIN_SECRET_CHARS,
    signed_headers,
)

routes = web.RouteTableDef()
MAX_RULES_PER_TENANT = 100
MAX_WEBHOOKS_PER_TENANT = 20
MAX_WINDOW_SECS = 3600
RECENT_EVENTS = 50
WEBHOOK_EVENTS = ("failure.detected", "anomaly.detected")
RULE_PATHS = ("/v1/alerts", "/v1/failure-rules")

Threshold = Annotated[float, Field(allow_inf_nan=False)]
Cooldown = Annotated[float, Field(ge=MIN_COOLDOWN_MINUTES, le=7 * 24 * 60, allow_inf_nan=False)]


class _RuleFields(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: Annotated[str, Field(max_length=200)] | None = None
    metric: AlertMetric | None = None
    metric_name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    operator: AlertOperator | None = None
    threshold: Threshold | None = Field(default=None, validation_alias=AliasChoices("threshold", "threshold_value"))
    window_secs: Annotated[int, Field(ge=10, le=MAX_WINDOW_SECS)] | None = None
    cooldown_minutes: Annotated[float, Field(ge=MIN_COOLDOWN_MINUTES, le=7 * 24 * 60, allow_inf_nan=False)] | None = (
        None
    )
    severity: AlertSeverity | None = None
    project_id: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    model: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    enabled: bool | None = None


class RuleCreate(_RuleFields):
    metric: AlertMetric
    operator: AlertOperator
    threshold: Threshold = Field(validation_alias=AliasChoices("threshold", "threshold_value"))


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    url: Annotated[AnyHttpUrl, Field(max_length=2048)]
    secret: Annotated[str, Field(min_length=MIN_SECRET_CHARS, max_length=256)]
    events: Annotated[list[str], Field(min_length=1, max_length=10)] = Field(
        default_factory=lambda: ["failure.detected"]
    )
    enabled: bool = True

    @field_validator("events")
    @classmethod
    def _known_events(cls, events: list[str]) -> list[str]:
        unknown = [e for e in events if e not in WEBHOOK_EVENTS]
        if unknown:
            raise ValueError(f"unknown event {unknown[0]!r}; expected one of {', '.join(WEBHOOK_EVENTS)}")
        return sorted(set(events))


def rule_json(rule: AlertRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.name,
        "metric": rule.metric,
        "metric_name": rule.metric_name,
        "operator": rule.operator,
        "threshold": rule.threshold,
        "threshold_value": rule.threshold,
        "window_secs": rule.window_secs,
        "cooldown_minutes": rule.cooldown_minutes,
        "severity": rule.severity,
        "project_id": rule.project_id,
        "model": rule.model,
        "enabled": rule.enabled,
        "created_at": rule.created_at.isoformat(),
        "updated_at": rule.updated_at.isoformat() if rule.updated_at else None,
    }


def sees_full_urls(principal: ControlPrincipal) -> bool:
    """For Slack-style hooks the URL is the credential: only owners signed in to the dashboard see it."""
    return principal.auth_kind == "session" and principal.role == "owner"


def webhook_json(hook: Webhook, *, full_url: bool) -> dict[str, Any]:
    """Never the secret, nor any character of it (it was chosen by the caller who sent it);
    the URL masked unless ``full_url``."""
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


async def _recent_events(request: web.Request, tenant_id: str) -> list[dict[str, Any]]:
    ch = request.app[clickhouse_key]
    try:
        rows = await ch.query(
            "SELECT id, rule_id, project_id, metric, operator, threshold_value, metric_value, severity, model, "
            f"triggered_at, notification_sent FROM {ch.database}.alert_events FINAL "
            "WHERE tenant_id = {t:String} ORDER BY triggered_at DESC, id LIMIT {n:UInt32}",
            {"t": tenant_id, "n": RECENT_EVENTS},
        )
    except Exception as exc:
        raise unavailable("Alert history is temporarily unavailable", 2) from exc
    return [
        {
            **row,
            "triggered_at": row["triggered_at"].replace(tzinfo=UTC).isoformat(),
            "notification_sent": bool(row["notification_sent"]),
            "model": row["model"] or None,
        }
        for row in rows
    ]


async def list_rules(request: web.Request) -> web.Response:
    principal = principal_of(request)
    state = await synced_state(request)
    rules = sorted(state.alert_rules_of(principal.tenant_id), key=lambda r: (r.created_at, r.id))
    events = await _recent_events(request, principal.tenant_id)
    return json_response({"rules": [rule_json(r) for r in rules], "recent_events": events})


async def get_rule(request: web.Request) -> web.Response:
    principal = principal_of(request)
    rule = _rule_of(request.app[reader_key].state, principal.tenant_id, request.match_info["rule_id"])
    return json_response(rule_json(rule))


async def create_rule(request: web.Request) -> web.Response:
    principal = principal_of(request)
    principal.require_role("member")
    body = await read_json_model(request, RuleCreate, request.app[settings_key].max_body_bytes)
    async with tenant_write(request, principal) as tx:
        if len(tx.state.alert_rules_of(principal.tenant_id)) >= MAX_RULES_PER_TENANT:
            raise ApiError(409, f"At most {MAX_RULES_PER_TENANT} alert rules per tenant", "limit_reached")
        fields = body.model_dump(exclude_none=True)
        rule = AlertRule(id=new_id(), tenant_id=principal.tenant_id, created_at=datetime.now(UTC), **fields)
        _check_rule(tx.state, principal.tenant_id, rule)
        await tx.commit(rule, "alert_rule.create")
    return json_response(rule_json(rule), status=201)


async def update_rule(request: web.Request) -> web.Response:
    principal = principal_of(request)
    principal.require_role("member")
    body = await read_json_model(request, _RuleFields, request.app[settings_key].max_body_bytes)
    async with tenant_write(request, principal) as tx:
        rule = _rule_of(tx.state, principal.tenant_id, request.match_info["rule_id"])
        # Fields sent as null clear the optional scopes; absent fields stay as they are.
        changes = {k: getattr(body, k) for k in body.model_fields_set}
        for required in ("metric", "operator", "threshold"):
            if required in changes and changes[required] is None:
                raise bad_request(f"Invalid field '{required}': may not be null", "validation_error")
        rule = rule.model_copy(update={**changes, "updated_at": datetime.now(UTC)})
        rule = AlertRule.model_validate(rule.model_dump())
        _check_rule(tx.state, principal.tenant_id, rule)
        await tx.commit(rule, "alert_rule.update")
    return json_response(rule_json(rule))


async def delete_rule(request: web.Request) -> web.Response:
    principal = principal_of(request)
    principal.require_role("member")
    async with tenant_write(request, principal) as tx:
        rule = _rule_of(tx.state, principal.tenant_id, request.match_info["rule_id"])
        await tx.commit(rule.model_copy(update={"deleted_at": datetime.now(UTC)}), "alert_rule.delete")
    return json_response({"message": "Alert rule deleted.", "id": rule.id})


for _path in RULE_PATHS:
    routes.get(_path)(list_rules)
    routes.post(_path)(create_rule)
    routes.get(_path + "/{rule_id}")(get_rule)
    routes.put(_path + "/{rule_id}")(update_rule)
    routes.patch(_path + "/{rule_id}")(update_rule)
    routes.delete(_path + "/{rule_id}")(delete_rule)


def _webhook_of(state: ConfigState, tenant_id: str, webhook_id: str) -> Webhook:
    hook = state.webhooks.get(webhook_id)
    if hook is None:
        raise not_found(f"Webhook '{webhook_id}' not found")
    if hook.tenant_id != tenant_id:
        raise forbidden("Webhook belongs to another tenant")
    return hook


@routes.get("/v1/webhooks")
async def list_webhooks(request: web.Request) -> web.Response:
    principal = principal_of(request)
    state = await synced_state(request)
    hooks = sorted(state.webhooks_of(principal.tenant_id), key=lambda h: (h.created_at, h.id))
    full = sees_full_urls(principal)
    return json_response({"webhooks": [webhook_json(h, full_url=full) for h in hooks]})


@routes.post("/v1/webhooks")
async def create_webhook(request: web.Request) -> web.Response:
    principal = principal_of(request)
    principal.require_role("member")
    body = await read_json_model(request, WebhookCreate, request.app[settings_key].max_body_bytes)
    url = str(body.url)
    refusal = await check_destination(url, request.app[outbound_key].policy)
    if refusal is not None:
        raise bad_request(
            f"Invalid field 'url': {refusal}",
            "validation_error",
            details=[{"field": "url", "message": refusal}],
        )
    async with tenant_write(request, principal) as tx:
        if len(tx.state.webhooks_of(principal.tenant_id)) >= MAX_WEBHOOKS_PER_TENANT:
            raise ApiError(409, f"At most {MAX_WEBHOOKS_PER_TENANT} webhooks per tenant", "limit_reached")
        webhook_id = new_id()
        context = webhook_secret_context(principal.tenant_id, webhook_id)
        hook = Webhook(
            id=webhook_id,
            tenant_id=principal.tenant_id,
            url=url,
            secret=request.app[secret_box_key].seal(body.secret, context),
            events=body.events,
            enabled=body.enabled,
            created_at=datetime.now(UTC),
        )
        await tx.commit(hook, "webhook.create")
    # The creator sent the URL: it is shown back to them whole, once.
    return json_response(webhook_json(hook, full_url=True), status=201)


@routes.delete("/v1/webhooks/{webhook_id}")
async def delete_webhook(request: web.Request) -> web.Response:
    principal = principal_of(request)
    principal.require_role("member")
    async with tenant_write(request, principal) as tx:
        hook = _webhook_of(tx.state, principal.tenant_id, request.match_info["webhook_id"])
        await tx.commit(hook.model_copy(update={"deleted_at": datetime.now(UTC)}), "webhook.delete")
    return json_response({"message": "Webhook deleted.", "id": hook.id})


@routes.post("/v1/webhooks/{webhook_id}/test")
async def test_webhook(request: web.Request) -> web.Response:
    """One signed ``webhook.test`` delivery, now, without retries; answers with its outcome's
    category (``delivered``, ``http_error`` with the status class, ``timeout``,
    ``refused_destination``, ``connection_failed``, ``invalid_url``), never the receiver's text."""
    principal = principal_of(request)
    principal.require_role("member")
    hook = _webhook_of(request.app[reader_key].state, principal.tenant_id, request.match_info["webhook_id"])
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
