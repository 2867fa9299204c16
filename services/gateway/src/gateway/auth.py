"""API-key authentication against the materialised config log. Fails closed."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from trulayer_common.config import ApiKey, ConfigState, Project, Tenant, hash_api_key
from trulayer_common.errors import ApiError, forbidden, unauthorized


@dataclass(frozen=True, slots=True)
class Principal:
    tenant: Tenant
    api_key: ApiKey


def credential(request: web.Request) -> str | None:
    """``Authorization: Bearer <key>`` or ``X-Api-Key: <key>``."""
    header = request.headers.get("Authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    key = request.headers.get("X-Api-Key")
    return key.strip() if key and key.strip() else None


def authenticate(request: web.Request, state: ConfigState) -> Principal:
    secret = credential(request)
    if secret is None:
        raise unauthorized("Missing API key: send 'Authorization: Bearer tl_...' or 'X-Api-Key'")
    if not secret.startswith("tl_"):
        raise unauthorized("Invalid API key")
    key = state.key_by_hash(hash_api_key(secret))
    if key is None:
        raise unauthorized("Invalid API key")
    if key.revoked_at is not None:
        raise unauthorized("API key revoked")
    tenant = state.tenants.get(key.tenant_id)
    if tenant is None:
        raise unauthorized("Invalid API key")
    return Principal(tenant, key)


def project_for_ingest(state: ConfigState, principal: Principal, requested: str | None) -> Project:
    """The project a trace goes to (API.md): the named project of the tenant, else the key's own.

    A project of another tenant is refused (403); an archived one too (403
    ``error.project.archived``).
    """
    tenant_id = principal.tenant.id
    project: Project | None = None
    if requested:
        project = state.project_of_tenant(tenant_id, requested)
        if project is None:
            other = state.projects.get(requested)
            if other is not None:
                raise forbidden("Project belongs to another tenant")
    if project is None:
        project = state.projects.get(principal.api_key.project_id)
        if project is None:
            raise ApiError(500, "API key points to an unknown project", "internal_error")
    if project.archived:
        raise forbidden("Project is archived: ingest is suspended", "error.project.archived")
    return project


def project_for_read(state: ConfigState, principal: Principal, requested: str) -> Project:
    project = state.project_of_tenant(principal.tenant.id, requested)
    if project is not None:
        return project
    if requested in state.projects:
        raise forbidden("Project belongs to another tenant")
    raise ApiError(404, f"Project '{requested}' not found", "not_found")
