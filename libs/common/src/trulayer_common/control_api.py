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
from trulayer_common.routing import Operation, QueryParam, RouteSpec
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
from trulayer_common.schemas.policies import (
    KillSwitchChange,
    KillSwitchState,
    ModelRouteCreate,
    ModelRouteFields,
    ModelRouteList,
    ModelRouteOut,
    PolicyCreate,
    PolicyFields,
    PolicyList,
    PolicyOut,
    SafeDefaultBody,
    SafeDefaultOut,
)

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


_PAGE = (
    QueryParam("limit", "integer", "1..200, default 50"),
    QueryParam("cursor", "string", "next_cursor of the previous page"),
)


def _control() -> list[RouteSpec]:
    """Kill switch (owners switch it) and the tenant's safe default (owners set it)."""
    tag = "control"
    return [
        RouteSpec(
            "GET",
            "/v1/control/killswitch",
            READ,
            "api",
            Operation("The tenant's kill switches", tag, responses={200: KillSwitchState}, errors=_READ_ERRORS),
            "killswitch.get",
        ),
        RouteSpec(
            "POST",
            "/v1/control/killswitch/enable",
            SESSION_OWNER,
            "api",
            Operation(
                "Switch the tenant (or one project) off: every decision blocks",
                tag,
                KillSwitchChange,
                {200: KillSwitchState},
                errors=_WRITE_ERRORS,
                description="The body is optional (no body: the whole tenant).",
            ),
            "killswitch.enable",
        ),
        RouteSpec(
            "POST",
            "/v1/control/killswitch/disable",
            SESSION_OWNER,
            "api",
            Operation(
                "Switch the tenant (or one project) back on",
                tag,
                KillSwitchChange,
                {200: KillSwitchState},
                errors=_WRITE_ERRORS,
                description="The body is optional (no body: the whole tenant).",
            ),
            "killswitch.disable",
        ),
        RouteSpec(
            "GET",
            "/v1/control/safe-default",
            READ,
            "api",
            Operation(
                "What SDKs apply without a fresh bundle", tag, responses={200: SafeDefaultOut}, errors=_READ_ERRORS
            ),
            "safe_default.get",
        ),
        RouteSpec(
            "PUT",
            "/v1/control/safe-default",
            SESSION_OWNER,
            "api",
            Operation(
                "Set what SDKs apply without a fresh bundle",
                tag,
                SafeDefaultBody,
                {200: SafeDefaultOut},
                errors=_WRITE_ERRORS,
            ),
            "safe_default.set",
        ),
    ]


def _policies() -> list[RouteSpec]:
    tag = "policies"
    item = "/v1/policies/{policy_id}"
    status = QueryParam(
        "status", "string", "only this status (default: all but archived)", ("draft", "active", "paused", "archived")
    )
    return [
        RouteSpec(
            "GET",
            "/v1/policies",
            READ,
            "api",
            Operation(
                "List policies (by priority, then id)",
                tag,
                responses={200: PolicyList},
                query=(*_PAGE, status),
                errors=_READ_ERRORS,
            ),
            "policies.list",
        ),
        RouteSpec(
            "POST",
            "/v1/policies",
            SESSION_MEMBER,
            "api",
            Operation("Create a policy", tag, PolicyCreate, {201: PolicyOut}, errors=_WRITE_ERRORS),
            "policies.create",
        ),
        RouteSpec(
            "GET",
            item,
            READ,
            "api",
            Operation("One policy", tag, responses={200: PolicyOut}, errors=_READ_ERRORS),
            "policies.get",
        ),
        RouteSpec(
            "PATCH",
            item,
            SESSION_MEMBER,
            "api",
            Operation(
                "Update a policy (only the fields sent)", tag, PolicyFields, {200: PolicyOut}, errors=_WRITE_ERRORS
            ),
            "policies.update",
        ),
        RouteSpec(
            "DELETE",
            item,
            SESSION_MEMBER,
            "api",
            Operation("Archive a policy", tag, None, {200: PolicyOut}, errors=_WRITE_ERRORS),
            "policies.archive",
        ),
    ]


def _model_routes() -> list[RouteSpec]:
    tag = "model-routes"
    item = "/v1/model-routes/{route_id}"
    return [
        RouteSpec(
            "GET",
            "/v1/model-routes",
            READ,
            "api",
            Operation(
                "List model routes (by priority, then id)",
                tag,
                responses={200: ModelRouteList},
                query=_PAGE,
                errors=_READ_ERRORS,
            ),
            "model_routes.list",
        ),
        RouteSpec(
            "POST",
            "/v1/model-routes",
            SESSION_MEMBER,
            "api",
            Operation("Create a model route", tag, ModelRouteCreate, {201: ModelRouteOut}, errors=_WRITE_ERRORS),
            "model_routes.create",
        ),
        RouteSpec(
            "GET",
            item,
            READ,
            "api",
            Operation("One model route", tag, responses={200: ModelRouteOut}, errors=_READ_ERRORS),
            "model_routes.get",
        ),
        RouteSpec(
            "PATCH",
            item,
            SESSION_MEMBER,
            "api",
            Operation(
                "Update a model route (only the fields sent)",
                tag,
                ModelRouteFields,
                {200: ModelRouteOut},
                errors=_WRITE_ERRORS,
            ),
            "model_routes.update",
        ),
        RouteSpec(
            "DELETE",
            item,
            SESSION_MEMBER,
            "api",
            Operation("Delete a model route", tag, None, {200: Deleted}, errors=_WRITE_ERRORS),
            "model_routes.delete",
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
    *_control(),
    *_policies(),
    *_model_routes(),
    GUARDLAYER_KEYS,
)
