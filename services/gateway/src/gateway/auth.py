"""Who is calling: API keys (SDKs, servers) and session JWTs (dashboards). Fails closed.

* ``Authorization: Bearer tl_...`` or ``X-Api-Key: tl_...`` — an API key, looked up by hash in
  the materialised config log (a revocation applies as soon as the log record arrives).
* ``Authorization: Bearer <JWT>`` — a dashboard session (:mod:`gateway.sessions`); its tenant
  must exist.

What the caller may then do is the route's :class:`~trulayer_common.access.Access`, checked by
the auth middleware (:mod:`gateway.routes`).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from gateway.sessions import SessionVerifier, looks_like_jwt
from trulayer_common.access import AuthKind, Role, api_key_role
from trulayer_common.config import ApiKey, ConfigLogReader, ConfigState, Project, Tenant, hash_api_key
from trulayer_common.errors import ApiError, forbidden, unauthorized
from trulayer_common.principal import ForwardedPrincipal


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller. ``api_key`` is set for API keys, ``None`` for sessions."""

    tenant: Tenant
    kind: AuthKind
    role: Role
    actor: str
    api_key: ApiKey | None = None

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.api_key.scopes) if self.api_key is not None else frozenset()

    def require_api_key(self) -> ApiKey:
        if self.api_key is None:
            raise forbidden("This endpoint needs an API key", "api_key_required")
        return self.api_key

    def forwarded(self) -> ForwardedPrincipal:
        """The principal as forwarded to the control-engine."""
        return ForwardedPrincipal(
            tenant_id=self.tenant.id,
            kind=self.kind,
            role=self.role,
            actor=self.actor,
            api_key_id=self.api_key.id if self.api_key is not None else None,
            scopes=self.scopes,
        )


def credential(request: web.Request) -> str | None:
    """``Authorization: Bearer <token>`` or ``X-Api-Key: <key>``; printable ASCII only (a key or a
    JWT never holds anything else, and other bytes must not reach the hashing of a lookup)."""
    header = request.headers.get("Authorization")
    if header:
        scheme, _, value = header.partition(" ")
        token = value.strip() if scheme.lower() == "bearer" else ""
    else:
        token = (request.headers.get("X-Api-Key") or "").strip()
    if not token or not token.isascii() or not token.isprintable():
        return None
    return token


class Authenticator:
    """Fails closed: before the config log is loaded, and whenever this replica's view of it is
    older than ``max_staleness_seconds`` (a revocation might be missing from it), every
    authentication is a 503 ``auth_unavailable`` (seed 003: auth fails closed)."""

    def __init__(
        self, reader: ConfigLogReader, sessions: SessionVerifier, max_staleness_seconds: float | None = None
    ) -> None:
        self.reader = reader
        self.sessions = sessions
        self._max_staleness = max_staleness_seconds

    @property
    def state(self) -> ConfigState:
        return self.reader.state

    async def authenticate(self, request: web.Request) -> Principal:
        """The caller, or 401 (no or bad credential) / 503 (configuration not loaded yet)."""
        if not self.reader.ready.is_set():
            raise ApiError(
                503, "Starting up: configuration not loaded yet", "unavailable", headers={"Retry-After": "1"}
            )
        if self._max_staleness is not None and self.reader.lag_seconds() > self._max_staleness:
            raise ApiError(
                503,
                "Authentication unavailable: this replica's configuration is stale (revocations may be missing)",
                "auth_unavailable",
                extra={"retry_after_seconds": 5},
                headers={"Retry-After": "5"},
            )
        token = credential(request)
        if token is None:
            raise unauthorized("Missing credentials: send 'Authorization: Bearer tl_...' or 'X-Api-Key'")
        if token.startswith("tl_"):
            return self.api_key_principal(token)
        if looks_like_jwt(token) and "Authorization" in request.headers and self.sessions.enabled:
            return await self._session_principal(token)
        raise unauthorized("Invalid API key")

    def api_key_principal(self, secret: str) -> Principal:
        key = self.state.key_by_hash(hash_api_key(secret))
        if key is None:
            raise unauthorized("Invalid API key")
        if key.revoked_at is not None:
            raise unauthorized("API key revoked")
        tenant = self.state.tenants.get(key.tenant_id)
        if tenant is None:
            raise unauthorized("Invalid API key")
        return Principal(tenant, "api_key", api_key_role(key.scopes), f"api_key:{key.id}", key)

    async def _session_principal(self, token: str) -> Principal:
        claims = await self.sessions.verify(token)
        tenant = self.state.tenants.get(claims.tenant_id)
        if tenant is None:
            raise unauthorized("Invalid session token: unknown tenant")
        return Principal(tenant, "session", claims.role, f"user:{claims.subject}")


authenticator_key = web.AppKey("authenticator", Authenticator)


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
        project = state.projects.get(principal.require_api_key().project_id)
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
