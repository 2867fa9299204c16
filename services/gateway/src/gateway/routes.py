"""The gateway's route table: every operation declared once, with its handler.

:class:`RouteTable` installs the declared routes on the aiohttp router and answers, for a
matched request, which :class:`~trulayer_common.routing.RouteSpec` it is. Authentication
(:func:`auth_middleware`), rate limits (:mod:`gateway.limits`) and ``/openapi.json``
(:mod:`gateway.openapi`) read that declaration; nothing is keyed by path strings elsewhere.
A request that matches no declared route gets aiohttp's 404/405 without authentication.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractRoute

from gateway.auth import authenticator_key
from gateway.key_usage import key_usage_key
from gateway.resources import principal_key
from trulayer_common.logging import bind_context
from trulayer_common.routing import Handler, RouteSpec


@dataclass(frozen=True)
class Route:
    spec: RouteSpec
    handler: Handler


class RouteTable:
    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = list(routes)
        seen: set[tuple[str, str]] = set()
        for route in self.routes:
            key = (route.spec.method, route.spec.path)
            if key in seen:
                raise ValueError(f"route declared twice: {key}")
            seen.add(key)
        self._by_route: dict[AbstractRoute, RouteSpec] = {}

    @property
    def specs(self) -> list[RouteSpec]:
        return [route.spec for route in self.routes]

    def install(self, app: web.Application) -> None:
        for route in self.routes:
            added = app.router.add_route(route.spec.method, route.spec.path, route.handler, name=route.spec.name)
            self._by_route[added] = route.spec

    def spec_of(self, request: web.Request) -> RouteSpec | None:
        """The declaration of the route ``request`` matched, ``None`` for 404/405."""
        return self._by_route.get(request.match_info.route)


route_table_key = web.AppKey("route_table", RouteTable)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate the caller of every non-public declared route and check its access (403)."""
    spec = request.app[route_table_key].spec_of(request)
    if spec is None or spec.access.public:
        return await handler(request)
    principal = await request.app[authenticator_key].authenticate(request)
    bind_context(tenant_id=principal.tenant.id)
    spec.access.check(principal.kind, principal.role, principal.scopes)
    request[principal_key] = principal
    if principal.api_key is not None:
        request.app[key_usage_key].used(principal.api_key.id)
    return await handler(request)
