"""``/v1/projects``: list, create, rename/retention, archive, unarchive (API.md "Tenancy and keys").

Roles: any member of the tenant lists; members create, patch and unarchive; only owners
archive. Names are unique per tenant, archived projects included (a name resolves a project
on ingest). Archiving the tenant's last active project is ``409
error.project.cannot_archive_last``, checked under the tenant's write lock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from control_engine.plan_gate import require_feature
from control_engine.requests import ControlPrincipal, principal_of
from control_engine.resources import reader_key, settings_key, tenant_write
from control_engine.tenants import new_id
from trulayer_common.config import ConfigState, Project, Tenant
from trulayer_common.config.plans import FEATURE_RETENTION_OVERRIDE
from trulayer_common.errors import ApiError, forbidden, not_found
from trulayer_common.http import json_response, read_json_model
from trulayer_common.routing import path_param
from trulayer_common.schemas.control import ProjectCreate, ProjectPatch


def project_json(project: Project) -> dict[str, Any]:
    return {
        "id": project.id,
        "name": project.name,
        "archived": project.archived,
        "retention_days_override": project.retention_days_override,
        "created_at": project.created_at.isoformat(),
    }


def tenant_of(state: ConfigState, principal: ControlPrincipal) -> Tenant:
    tenant = state.tenants.get(principal.tenant_id)
    if tenant is None:
        raise ApiError(401, "Unknown tenant", "unauthorized")
    return tenant


def project_of(state: ConfigState, principal: ControlPrincipal, project_id: str) -> Project:
    project = state.projects.get(project_id)
    if project is None:
        raise not_found(f"Project '{project_id}' not found")
    if project.tenant_id != principal.tenant_id:
        raise forbidden("Project belongs to another tenant")
    return project


def _ensure_name_free(state: ConfigState, tenant_id: str, name: str, except_id: str | None = None) -> None:
    for other in state.projects_of(tenant_id):
        if other.name == name and other.id != except_id:
            raise ApiError(409, f"A project named '{name}' already exists", "conflict")


async def list_projects(request: web.Request) -> web.Response:
    principal = principal_of(request)
    state = request.app[reader_key].state
    tenant_of(state, principal)
    projects = sorted(state.projects_of(principal.tenant_id), key=lambda p: (p.created_at, p.id))
    return json_response({"projects": [project_json(p) for p in projects]})


async def create_project(request: web.Request) -> web.Response:
    principal = principal_of(request)
    settings = request.app[settings_key]
    body = await read_json_model(request, ProjectCreate, settings.max_body_bytes)
    async with tenant_write(request, principal) as tx:
        tenant = tenant_of(tx.state, principal)
        if body.retention_days_override is not None:
            require_feature(settings.plans, tenant, FEATURE_RETENTION_OVERRIDE, "Per-project retention")
        _ensure_name_free(tx.state, tenant.id, body.name)
        project = Project(
            id=new_id(),
            tenant_id=tenant.id,
            name=body.name,
            retention_days_override=body.retention_days_override,
            created_at=datetime.now(UTC),
        )
        await tx.commit(project, "project.create")
    return json_response(project_json(project), status=201)


async def patch_project(request: web.Request) -> web.Response:
    principal = principal_of(request)
    settings = request.app[settings_key]
    body = await read_json_model(request, ProjectPatch, settings.max_body_bytes)
    changes: dict[str, Any] = {}
    async with tenant_write(request, principal) as tx:
        tenant = tenant_of(tx.state, principal)
        project = project_of(tx.state, principal, path_param(request, "project_id"))
        if body.name is not None and body.name != project.name:
            _ensure_name_free(tx.state, tenant.id, body.name, except_id=project.id)
            changes["name"] = body.name
        if "retention_days_override" in body.model_fields_set:
            if body.retention_days_override is not None:
                require_feature(settings.plans, tenant, FEATURE_RETENTION_OVERRIDE, "Per-project retention")
            changes["retention_days_override"] = body.retention_days_override
        if changes:
            project = project.model_copy(update=changes)
            await tx.commit(project, "project.update")
    return json_response(project_json(project))


async def archive_project(request: web.Request) -> web.Response:
    principal = principal_of(request)
    async with tenant_write(request, principal) as tx:
        project = project_of(tx.state, principal, path_param(request, "project_id"))
        if not project.archived:
            active = [p for p in tx.state.projects_of(principal.tenant_id) if not p.archived]
            if len(active) <= 1:
                raise ApiError(
                    409,
                    "Cannot archive the tenant's last active project",
                    "error.project.cannot_archive_last",
                )
            project = project.model_copy(update={"archived": True})
            await tx.commit(project, "project.archive")
    return json_response(project_json(project))


async def unarchive_project(request: web.Request) -> web.Response:
    principal = principal_of(request)
    async with tenant_write(request, principal) as tx:
        project = project_of(tx.state, principal, path_param(request, "project_id"))
        if project.archived:
            project = project.model_copy(update={"archived": False})
            await tx.commit(project, "project.unarchive")
    return json_response(project_json(project))


HANDLERS = {
    "projects.list": list_projects,
    "projects.create": create_project,
    "projects.update": patch_project,
    "projects.archive": archive_project,
    "projects.unarchive": unarchive_project,
}
