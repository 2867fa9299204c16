"""Who is asking: the principal the gateway authenticated, trusted only with the internal token.

The control-engine is not a public edge: the gateway authenticates callers and forwards
control-plane routes with the principal in the ``X-Trulayer-*`` headers of
:mod:`trulayer_common.internal_headers`. :func:`internal_auth_middleware` refuses every
``/v1`` and ``/internal`` request without the right ``INTERNAL_TOKEN`` (401, constant-time
compare) and parses the principal; handlers read it with :func:`principal_of` and check roles
with :meth:`ControlPrincipal.require_role`.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, cast, get_args

from aiohttp import web
from aiohttp.typedefs import Middleware

from trulayer_common import internal_headers as ih
from trulayer_common.errors import ApiError, forbidden, unauthorized

Role = Literal["owner", "member", "viewer"]
AuthKind = Literal["api_key", "session"]
_ROLES: tuple[Role, ...] = get_args(Role)
_RANK = {"viewer": 0, "member": 1, "owner": 2}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class ControlPrincipal:
    tenant_id: str
    role: Role
    actor: str
    auth_kind: AuthKind
    api_key_id: str | None = None

    def require_role(self, minimum: Role) -> None:
        """403 unless the caller's role is at least ``minimum`` (owner > member > viewer)."""
        if _RANK[self.role] < _RANK[minimum]:
            raise forbidden(f"This action needs the '{minimum}' role", "insufficient_role")


principal_key = web.RequestKey("control_principal", ControlPrincipal)


def _principal(request: web.Request) -> ControlPrincipal | None:
    tenant_id = request.headers.get(ih.TENANT_ID)
    if not tenant_id:
        return None
    role = request.headers.get(ih.ROLE, "")
    kind = request.headers.get(ih.AUTH_KIND, "")
    actor = request.headers.get(ih.ACTOR, "")
    if role not in _ROLES or kind not in ("api_key", "session") or not actor:
        raise unauthorized("Malformed forwarded principal")
    return ControlPrincipal(
        tenant_id=tenant_id,
        role=role,
        actor=actor,
        auth_kind=cast(AuthKind, kind),
        api_key_id=request.headers.get(ih.API_KEY_ID) or None,
    )


def internal_auth_middleware(token: str | None) -> Middleware:
    """Guard every API path; health routes stay open. With no token configured nothing passes."""
    expected = token.encode() if token else None

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(("/v1/", "/internal/")) or request.path == "/v1":
            given = request.headers.get(ih.INTERNAL_TOKEN_HEADER, "").encode()
            if expected is None or not hmac.compare_digest(given, expected):
                raise unauthorized("Missing or invalid internal token")
            principal = _principal(request)
            if principal is not None:
                request[principal_key] = principal
        return await handler(request)

    return middleware


def principal_of(request: web.Request) -> ControlPrincipal:
    """The forwarded principal; a route reached without one is refused (never anonymous)."""
    principal: ControlPrincipal | None = request.get(principal_key)
    if principal is None:
        raise ApiError(401, "No authenticated principal", "unauthorized")
    return principal
