"""The control-plane routes: the contract between the gateway and the control-engine.

Each route is declared once here. The gateway authenticates, rate-limits and forwards exactly
these operations (nothing else reaches the control-engine) and documents them in
``/openapi.json``; the control-engine binds one handler to each by :attr:`RouteSpec.name` (and
refuses to start if one is missing or extra) and checks each route's :class:`Access` again on
the forwarded principal.

GuardLayer compatibility routes (``/api/v1/...``) are gateway aliases of these, forwarded to
the same control-engine paths; the unauthenticated ``POST /api/v1/api-keys`` is forwarded to
:data:`GUARDLAYER_KEYS`, which the control-engine serves only with ``GUARDLAYER_COMPAT`` on.
"""

from __future__ import annotations

from trulayer_common.access import PUBLIC, READ, SESSION_MEMBER, SESSION_OWNER, SESSION_VIEWER, WRITE
from trulayer_common.routing import Operation, RouteSpec
from trulayer_common.schemas.control import (
    AlertRuleCreate,
    AlertRuleFields,
    AlertRuleOut,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyOut,
    Deleted,
    GuardLayerKeyRequest,
    GuardLayerKeyResponse,
    ProjectCreate,
    ProjectList,
    ProjectOut,
    ProjectPatch,
    WebhookCreate,
    WebhookList,
    WebhookOut,
    WebhookTestResult,
)
from trulayer_common.schemas.evals import EvalRuleCreate, EvalRuleFields, EvalRuleList, EvalRuleOut

_READ_ERRORS = (400, 401, 403, 404, 429, 503)
_WRITE_ERRORS = (400, 401, 403, 404, 409, 413, 415, 422, 429, 503)


def _projects() -> list[RouteSpec]:
    tag = "projects"
    return [
        RouteSpec(
            "GET",
            "/v1/projects",
            SESSION_VIEWER,
            "api",
            Operation("List the tenant's projects", tag, responses={200: ProjectList}, errors=_READ_ERRORS),
            "projects.list",
        ),
        RouteSpec(
            "POST",
            "/v1/projects",
            SESSION_MEMBER,
            "api",
            Operation(
                "Create a project",
                tag,
                ProjectCreate,
                {201: ProjectOut},
                errors=(402, *_WRITE_ERRORS),
            ),
            "projects.create",
        ),
        RouteSpec(
            "PATCH",
            "/v1/projects/{project_id}",
            SESSION_MEMBER,
            "api",
            Operation(
                "Rename a project or set its retention",
                tag,
                ProjectPatch,
                {200: ProjectOut},
                errors=(402, *_WRITE_ERRORS),
            ),
            "projects.update",
        ),
        RouteSpec(
            "POST",
            "/v1/projects/{project_id}/archive",
            SESSION_OWNER,
            "api",
            Operation(
                "Archive a project (not the last active one)", tag, None, {200: ProjectOut}, errors=_WRITE_ERRORS
            ),
            "projects.archive",
        ),
        RouteSpec(
            "POST",
            "/v1/projects/{project_id}/unarchive",
            SESSION_MEMBER,
            "api",
            Operation("Unarchive a project", tag, None, {200: ProjectOut}, errors=_WRITE_ERRORS),
            "projects.unarchive",
        ),
    ]


def _api_keys() -> list[RouteSpec]:
    tag = "api-keys"
    return [
        RouteSpec(
            "GET",
            "/v1/apikeys",
            SESSION_MEMBER,
            "api",
            Operation("List API keys (no secrets)", tag, responses={200: ApiKeyList}, errors=_READ_ERRORS),
            "apikeys.list",
        ),
        RouteSpec(
            "POST",
            "/v1/apikeys",
            SESSION_MEMBER,
            "api",
            Operation(
                "Create an API key (the secret is shown once)",
                tag,
                ApiKeyCreate,
                {201: ApiKeyCreated},
                errors=_WRITE_ERRORS,
                description="Only owners create keys with the `owner` scope.",
            ),
            "apikeys.create",
        ),
        RouteSpec(
            "DELETE",
            "/v1/apikeys/{key_id}",
            SESSION_OWNER,
            "api",
            Operation("Revoke an API key", tag, None, {200: ApiKeyOut}, errors=_WRITE_ERRORS),
            "apikeys.revoke",
        ),
        RouteSpec(
            "POST",
            "/v1/apikeys/{key_id}/rotate",
            SESSION_OWNER,
            "api",
            Operation(
                "Rotate an API key (the old secret stops working)",
                tag,
                None,
                {200: ApiKeyCreated},
                errors=_WRITE_ERRORS,
            ),
            "apikeys.rotate",
        ),
    ]


def _alert_rule_writes(base: str, label: str) -> list[RouteSpec]:
    """Writes of alert rules (their reads are the gateway's: ``gateway.alerting_reads``)."""
    tag = "alerts"
    item = base + "/{rule_id}"
    return [
        RouteSpec(
            "POST",
            base,
            WRITE,
            "api",
            Operation(
                f"Create an alert rule ({label} path)", tag, AlertRuleCreate, {201: AlertRuleOut}, errors=_WRITE_ERRORS
            ),
            f"{label}.create",
        ),
        RouteSpec(
            "PUT",
            item,
            WRITE,
            "api",
            Operation(
                f"Update an alert rule: only the fields sent ({label} path)",
                tag,
                AlertRuleFields,
                {200: AlertRuleOut},
                errors=_WRITE_ERRORS,
            ),
            f"{label}.replace",
        ),
        RouteSpec(
            "PATCH",
            item,
            WRITE,
            "api",
            Operation(
                f"Update an alert rule ({label} path)",
                tag,
                AlertRuleFields,
                {200: AlertRuleOut},
                errors=_WRITE_ERRORS,
            ),
            f"{label}.update",
        ),
        RouteSpec(
            "DELETE",
            item,
            WRITE,
            "api",
            Operation(f"Delete an alert rule ({label} path)", tag, None, {200: Deleted}, errors=_WRITE_ERRORS),
            f"{label}.delete",
        ),
    ]


def _webhooks() -> list[RouteSpec]:
    tag = "webhooks"
    return [
        RouteSpec(
            "GET",
            "/v1/webhooks",
            READ,
            "api",
            Operation("List webhooks", tag, responses={200: WebhookList}, errors=_READ_ERRORS),
            "webhooks.list",
        ),
        RouteSpec(
            "POST",
            "/v1/webhooks",
            WRITE,
            "api",
            Operation("Register a webhook", tag, WebhookCreate, {201: WebhookOut}, errors=_WRITE_ERRORS),
            "webhooks.create",
        ),
        RouteSpec(
            "DELETE",
            "/v1/webhooks/{webhook_id}",
            WRITE,
            "api",
            Operation("Delete a webhook", tag, None, {200: Deleted}, errors=_WRITE_ERRORS),
            "webhooks.delete",
        ),
        RouteSpec(
            "POST",
            "/v1/webhooks/{webhook_id}/test",
            WRITE,
            "api",
            Operation(
                "Send a signed test delivery now",
                tag,
                None,
                {200: WebhookTestResult},
                errors=_WRITE_ERRORS,
            ),
            "webhooks.test",
        ),
    ]


def _eval_rules() -> list[RouteSpec]:
    """Eval rules (API.md "Feedback and evals"): configuration, owned by the control-engine; their
    counters are read from Redis when listed. A create over the plan's cap is 402
    ``eval_rules_quota_exceeded``."""
    tag = "evals"
    item = "/v1/eval-rules/{rule_id}"
    return [
        RouteSpec(
            "GET",
            "/v1/eval-rules",
            READ,
            "api",
            Operation("List eval rules with their counters", tag, responses={200: EvalRuleList}, errors=_READ_ERRORS),
            "eval_rules.list",
        ),
        RouteSpec(
            "POST",
            "/v1/eval-rules",
            WRITE,
            "api",
            Operation(
                "Create an eval rule (evaluates new traces of a project)",
                tag,
                EvalRuleCreate,
                {201: EvalRuleOut},
                errors=(402, *_WRITE_ERRORS),
            ),
            "eval_rules.create",
        ),
        RouteSpec(
            "GET",
            item,
            READ,
            "api",
            Operation("One eval rule with its counters", tag, responses={200: EvalRuleOut}, errors=_READ_ERRORS),
            "eval_rules.get",
        ),
        RouteSpec(
            "PATCH",
            item,
            WRITE,
            "api",
            Operation(
                "Update an eval rule: only the fields sent",
                tag,
                EvalRuleFields,
                {200: EvalRuleOut},
                errors=_WRITE_ERRORS,
            ),
            "eval_rules.update",
        ),
        RouteSpec(
            "DELETE",
            item,
            WRITE,
            "api",
            Operation("Delete an eval rule", tag, None, {200: Deleted}, errors=_WRITE_ERRORS),
            "eval_rules.delete",
        ),
    ]


GUARDLAYER_KEYS = RouteSpec(
    "POST",
    "/internal/guardlayer/api-keys",
    PUBLIC,
    "none",
    Operation(
        "GuardLayer: create a starter tenant and its API key (no authentication)",
        "guardlayer",
        GuardLayerKeyRequest,
        {201: GuardLayerKeyResponse},
        errors=(400, 404, 413, 415, 422, 503),
    ),
    "guardlayer.create_key",
)

CONTROL_ROUTES: tuple[RouteSpec, ...] = (
    *_projects(),
    *_api_keys(),
    *_alert_rule_writes("/v1/alerts", "alerts"),
    *_alert_rule_writes("/v1/failure-rules", "failure_rules"),
    *_webhooks(),
    *_eval_rules(),
    GUARDLAYER_KEYS,
)
