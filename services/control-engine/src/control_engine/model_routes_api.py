"""``/v1/model-routes``: list (``{items, next_cursor, has_more}``), create, get, update, delete.

Same access and write path as policies (:mod:`control_engine.policies_api`). Conditions read
live windows of the request's project and model (docs/control-plane.md); a deleted route stays
on the log with ``deleted_at`` and leaves every reader's state. At most
:data:`MAX_ROUTES_PER_TENANT` routes (409 ``limit_reached``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from control_engine.pages import page
from control_engine.policies_api import caught_up, resolve_project
from control_engine.policy_rules import RuleError, check_route
from control_engine.requests import principal_of
from control_engine.resources import settings_key, tenant_write
from control_engine.tenants import new_id
from trulayer_common.config import ConfigState
from trulayer_common.config.control_entities import ModelRoute, RouteActionSpec, RouteConditionSpec
from trulayer_common.errors import ApiError, bad_request, forbidden, not_found
from trulayer_common.http import json_response, read_json_model
from trulayer_common.routing import path_param
from trulayer_common.schemas.policies import (
    ModelRouteCreate,
    ModelRouteFields,
    RouteAction,
    RouteCondition,
    model_route_json,
)

MAX_ROUTES_PER_TENANT = 200
_NULLABLE = frozenset({"project_id"})


def _route_of(state: ConfigState, tenant_id: str, route_id: str) -> ModelRoute:
    route = state.control.of(tenant_id).model_routes.get(route_id)
    if route is None:
        owner = state.control.owner("model_route", route_id)
        if owner is not None and owner != tenant_id:
            raise forbidden("Model route belongs to another tenant")
        raise not_found(f"Model route '{route_id}' not found")
    return route


def _checked(condition: RouteCondition, action: RouteAction) -> tuple[RouteConditionSpec, RouteActionSpec]:
    try:
        check_route(condition, action)
    except RuleError as exc:
        raise exc.api_error() from None
    return RouteConditionSpec(**condition.model_dump()), RouteActionSpec(**action.model_dump())


async def list_routes(request: web.Request) -> web.Response:
    principal = principal_of(request)
    state = await caught_up(request)
    routes = list(state.control.of(principal.tenant_id).model_routes.values())
    return json_response(page(routes, lambda r: (r.priority, r.id), model_route_json, request.query))


async def get_route(request: web.Request) -> web.Response:
    principal = principal_of(request)
    state = await caught_up(request)
    return json_response(model_route_json(_route_of(state, principal.tenant_id, path_param(request, "route_id"))))


async def create_route(request: web.Request) -> web.Response:
    principal = principal_of(request)
    body = await read_json_model(request, ModelRouteCreate, request.app[settings_key].max_body_bytes)
    condition, action = _checked(body.condition, body.action)
    async with tenant_write(request, principal) as tx:
        if len(tx.state.control.of(principal.tenant_id).model_routes) >= MAX_ROUTES_PER_TENANT:
            raise ApiError(409, f"At most {MAX_ROUTES_PER_TENANT} model routes per tenant", "limit_reached")
        route = ModelRoute(
            id=new_id(),
            tenant_id=principal.tenant_id,
            name=body.name,
            condition=condition,
            action=action,
            priority=body.priority,
            enabled=body.enabled,
            models=body.models or [],
            project_id=resolve_project(tx.state, principal.tenant_id, body.project_id, "project_id"),
            created_at=datetime.now(UTC),
        )
        await tx.commit(route, "model_route.create")
    return json_response(model_route_json(route), status=201)


async def update_route(request: web.Request) -> web.Response:
    principal = principal_of(request)
    body = await read_json_model(request, ModelRouteFields, request.app[settings_key].max_body_bytes)
    changes: dict[str, Any] = {k: getattr(body, k) for k in body.model_fields_set}
    for name, value in changes.items():
        if value is None and name not in _NULLABLE:
            raise bad_request(f"Invalid field '{name}': may not be null", "validation_error")
    async with tenant_write(request, principal) as tx:
        route = _route_of(tx.state, principal.tenant_id, path_param(request, "route_id"))
        condition = body.condition or RouteCondition.model_validate(route.condition.model_dump())
        action = body.action or RouteAction.model_validate(route.action.model_dump())
        changes["condition"], changes["action"] = _checked(condition, action)
        if "project_id" in changes:
            changes["project_id"] = resolve_project(tx.state, principal.tenant_id, body.project_id, "project_id")
        route = ModelRoute.model_validate({**route.model_dump(), **changes, "updated_at": datetime.now(UTC)})
        await tx.commit(route, "model_route.update")
    return json_response(model_route_json(route))


async def delete_route(request: web.Request) -> web.Response:
    principal = principal_of(request)
    async with tenant_write(request, principal) as tx:
        route = _route_of(tx.state, principal.tenant_id, path_param(request, "route_id"))
        await tx.commit(route.model_copy(update={"deleted_at": datetime.now(UTC)}), "model_route.delete")
    return json_response({"message": "Model route deleted.", "id": route.id})


HANDLERS = {
    "model_routes.list": list_routes,
    "model_routes.create": create_route,
    "model_routes.get": get_route,
    "model_routes.update": update_route,
    "model_routes.delete": delete_route,
}
