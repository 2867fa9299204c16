"""Who is calling: API keys (SDKs, servers) and session JWTs (dashboards). Fails closed.

* ``Authorization: Bearer tl_...`` or ``X-Api-Key: tl_...`` — an API key, looked up by hash in
  the materialised config log (a revocation applies as soon as the log record arrives).
* ``Authorization: Bearer <JWT>`` — a dashboard session (:mod:`gateway.sessions`); its tenant
  must exist.
* :class:`RouteAccess` says which kinds each path accepts; a valid credential of the wrong
  kind is 403 (ingest takes API keys only; the tenancy routes take sessions only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from gateway.sessions import Role, SessionVerifier, looks_like_jwt
from trulayer_common.config import ApiKey, ConfigLogReader, ConfigState, Project, Tenant, hash_api_key
from trulayer_common.errors import ApiError, forbidden, unauthorized

AuthKind = Literal["api_key", "session"]
ANY_CREDENTIAL: frozenset[AuthKind] = frozenset({"api_key", "session"})
API_KEY_ONLY: frozenset[AuthKind] = frozenset({"api_key"})
SESSION_ONLY: frozenset[AuthKind] = frozenset({"session"})


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller. ``api_key`` is set for API keys, ``None`` for sessions."""

    tenant: Tenant
    kind: AuthKind
    role: Role
    actor: str
    api_key: ApiKey | None = None

    def require_api_key(self) -> ApiKey:
        if self.api_key is None:
            raise forbidden("This endpoint needs an API key", "api_key_required")
        return self.api_key


class RouteAccess:
    """Credential kinds accepted per ``/v1`` path prefix; the longest matching prefix wins.

    Paths no rule matches accept both kinds. Prefixes match whole segments: ``/v1/ingest``
    covers ``/v1/ingest`` and ``/v1/ingest/batch`` but not ``/v1/ingestion-health``.
    """

    def __init__(self) -> None:
        self._rules: dict[str, frozenset[AuthKind]] = {}

    def allow(self, prefix: str, kinds: frozenset[AuthKind]) -> None:
        self._rules[prefix.rstrip("/")] = kinds

    def kinds_for(self, path: str) -> frozenset[AuthKind]:
        best = ""
        for prefix in self._rules:
            if (path == prefix or path.startswith(prefix + "/")) and len(prefix) > len(best):
                best = prefix
        return self._rules[best] if best else ANY_CREDENTIAL


route_access_key = web.AppKey("route_access", RouteAccess)


def needs_authentication(path: str) -> bool:
    """Every API route does; health, metrics and GuardLayer's key creation do not."""
    if path.startswith("/v1/"):
        return True
    return path.startswith("/api/v1/") and path != "/api/v1/api-keys"


def credential(request: web.Request) -> str | None:
    """``Authorization: Bearer <token>`` or ``X-Api-Key: <key>``. API keys and JWTs are ASCII:
    anything else is an invalid credential (401), never a decoding error."""
    for name in ("Authorization", "X-Api-Key"):
        if not request.headers.get(name, "").isascii():
            raise unauthorized("Invalid credentials: not ASCII")
    header = request.headers.get("Authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    key = request.headers.get("X-Api-Key")
    return key.strip() if key and key.strip() else None


def api_key_role(key: ApiKey) -> Role:
    """API keys act as ``owner`` when created with the owner scope, else as ``member``."""
    return "owner" if "owner" in key.scopes else "member"


class Authenticator:
    def __init__(
        self,
        reader: ConfigLogReader,
        sessions: SessionVerifier,
        access: RouteAccess,
        benchmark_api_key_id: str | None = None,
    ) -> None:
        self.reader = reader
        self.sessions = sessions
        self.access = access
        self._benchmark_key_id = benchmark_api_key_id

    @property
    def state(self) -> ConfigState:
        return self.reader.state

    async def authenticate(self, request: web.Request) -> Principal:
        if not self.reader.ready.is_set():
            raise ApiError(
                503, "Starting up: configuration not loaded yet", "unavailable", headers={"Retry-After": "1"}
            )
        if self._benchmark_key_id is not None:
            return self._benchmark_principal()
        token = credential(request)
        if token is None:
            raise unauthorized("Missing credentials: send 'Authorization: Bearer tl_...' or 'X-Api-Key'")
        if token.startswith("tl_"):
            principal = self.api_key_principal(token)
        elif looks_like_jwt(token) and "Authorization" in request.headers and self.sessions.enabled:
            principal = await self._session_principal(token)
        else:
            raise unauthorized("Invalid API key")
        if principal.kind not in self.access.kinds_for(request.path):
            if principal.kind == "api_key":
                raise forbidden("This endpoint needs a dashboard session, not an API key", "session_required")
            raise forbidden("This endpoint needs an API key, not a session", "api_key_required")
        return principal

    def api_key_principal(self, secret: str) -> Principal:
        key = self.state.key_by_hash(hash_api_key(secret))
        if key is None:
            raise unauthorized("Invalid API key")
        if key.revoked_at is not None:
            raise unauthorized("API key revoked")
        tenant = self.state.tenants.get(key.tenant_id)
        if tenant is None:
            raise unauthorized("Invalid API key")
        return Principal(tenant, "api_key", api_key_role(key), f"api_key:{key.id}", key)

    async def _session_principal(self, token: str) -> Principal:
        claims = await self.sessions.verify(token)
        tenant = self.state.tenants.get(claims.tenant_id)
        if tenant is None:
            raise unauthorized("Invalid session token: unknown tenant")
        return Principal(tenant, "session", claims.role, f"user:{claims.subject}")

    def _benchmark_principal(self) -> Principal:
        key = self.state.api_keys.get(self._benchmark_key_id or "")
        tenant = self.state.tenants.get(key.tenant_id) if key else None
        if key is None or tenant is None:
            raise unauthorized("Benchmark API key not found")
        return Principal(tenant, "api_key", api_key_role(key), f"api_key:{key.id}", key)


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
