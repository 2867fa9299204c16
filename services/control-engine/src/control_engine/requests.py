"""Who is asking, and may they: the forwarded principal checked against the route's access.

The control-engine is not a public edge: the gateway authenticates callers and forwards the
operations of :data:`trulayer_common.control_api.CONTROL_ROUTES` with the principal
(:mod:`trulayer_common.principal`) and the internal token. :func:`control_middleware`:

* refuses ambiguous paths (encoded or literal dot segments: :func:`~trulayer_common.routing.check_path`);
* refuses every ``/v1`` and ``/internal`` request without the right ``INTERNAL_TOKEN`` (401,
  constant-time compare);
* checks the forwarded principal against the matched route's declared access again (defence
  in depth: a gateway bug cannot hand out admin): kind, API-key scope, minimum role; a
  non-public route without a principal is 401.

Handlers read the principal with :func:`principal_of`; conditional role checks (e.g. only
owners mint owner keys) use :meth:`ControlPrincipal.require_role`.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware
from aiohttp.web_urldispatcher import AbstractRoute

from trulayer_common import principal as forwarded
from trulayer_common.errors import ApiError, unauthorized
from trulayer_common.principal import ForwardedPrincipal, InvalidPrincipalError
from trulayer_common.routing import RouteSpec, check_path

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ControlPrincipal = ForwardedPrincipal


principal_key = web.RequestKey("control_principal", ControlPrincipal)


@dataclass
class DeclaredRoutes:
    """The control-plane specs of the routes installed on this app, by aiohttp route."""

    by_route: dict[AbstractRoute, RouteSpec]


declared_routes_key = web.AppKey("declared_routes", DeclaredRoutes)


def control_middleware(token: str | None) -> Middleware:
    """Guard every API path; health routes stay open. With no token configured nothing passes."""
    expected = token.encode() if token else None

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        check_path(request.raw_path.partition("?")[0], request.path)
        if not request.path.startswith(("/v1/", "/internal/")):
            return await handler(request)
        given = request.headers.get(forwarded.INTERNAL_TOKEN_HEADER, "").encode(errors="replace")
        if expected is None or not hmac.compare_digest(given, expected):
            raise unauthorized("Missing or invalid internal token")
        try:
            principal = ForwardedPrincipal.from_headers(request.headers)
        except InvalidPrincipalError:
            raise unauthorized("Malformed forwarded principal") from None
        spec = request.app[declared_routes_key].by_route.get(request.match_info.route)
        if spec is not None and not spec.access.public:
            if principal is None:
                raise ApiError(401, "No authenticated principal", "unauthorized")
            spec.access.check(principal.kind, principal.role, principal.scopes)
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


def install_routes(app: web.Application, specs: tuple[RouteSpec, ...], handlers: Mapping[str, Handler]) -> None:
    """Bind one handler to each declared spec by name; a spec without a handler, or a handler
    without a spec, is a programming error found at start."""
    missing = sorted(s.name for s in specs if s.name not in handlers)
    extra = sorted(set(handlers) - {s.name for s in specs})
    if missing or extra:
        raise RuntimeError(f"control routes and handlers differ: missing {missing}, undeclared {extra}")
    by_route: dict[AbstractRoute, RouteSpec] = {}
    for spec in specs:
        by_route[app.router.add_route(spec.method, spec.path, handlers[spec.name])] = spec
    app[declared_routes_key] = DeclaredRoutes(by_route)
