"""Control-plane routes: authenticated and rate-limited here, served by the control-engine.

To expose a control-engine resource through the gateway, register its prefix once in
``create_app``::

    forward_prefix(app, "/v1/projects", access=SESSION_ONLY)
    forward_prefix(app, "/v1/alerts", access=ANY_CREDENTIAL)

Every method on the prefix and below it is then forwarded to ``CONTROL_ENGINE_URL`` with the
same path and query, the request body (≤ ``CONTROL_MAX_BODY_BYTES``, else 413), the caller's
request id, the authenticated principal in the ``X-Trulayer-*`` headers of
:mod:`trulayer_common.internal_headers` and the shared ``INTERNAL_TOKEN``. The control-engine's
answer (status, JSON body, ETag/Cache-Control/Location) is relayed as is. A control-engine
that cannot be reached is a 503 ``control_unavailable``; nothing is retried, since writes are
not idempotent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from prometheus_client import Counter

from gateway.auth import ANY_CREDENTIAL, AuthKind, Principal, route_access_key
from gateway.resources import principal_key, settings_key
from gateway.settings import GatewaySettings
from trulayer_common import internal_headers as ih
from trulayer_common.errors import ApiError, unavailable
from trulayer_common.http import REQUEST_ID_HEADER, get_request_id
from trulayer_common.logging import get_logger

log = get_logger(__name__)
FORWARD_FAILED = Counter("trulayer_gateway_control_forward_failed_total", "forwards the control-engine did not answer")

_REQUEST_HEADERS = ("Content-Type", "Accept", "If-None-Match", "If-Match")
_RESPONSE_HEADERS = ("Content-Type", "ETag", "Cache-Control", "Location", "Retry-After")


class ControlProxy:
    def __init__(self, settings: GatewaySettings, http: aiohttp.ClientSession) -> None:
        self._base = settings.control_engine_url.rstrip("/")
        self._token = settings.internal_token.get_secret_value() if settings.internal_token else None
        self._http = http
        self._timeout = aiohttp.ClientTimeout(total=settings.control_timeout_seconds)
        self._max_body = settings.control_max_body_bytes

    async def forward(self, request: web.Request, principal: Principal | None, path: str | None = None) -> web.Response:
        """Send ``request`` to the control-engine (at ``path``, default the same path) and relay the answer."""
        if self._token is None:
            raise ApiError(503, "Control plane not configured (INTERNAL_TOKEN unset)", "control_unavailable")
        body = await self._read_body(request)
        headers = CIMultiDict[str]()
        for name in _REQUEST_HEADERS:
            if name in request.headers:
                headers[name] = request.headers[name]
        headers[REQUEST_ID_HEADER] = get_request_id(request)
        headers[ih.INTERNAL_TOKEN_HEADER] = self._token
        if principal is not None:
            headers[ih.TENANT_ID] = principal.tenant.id
            headers[ih.ROLE] = principal.role
            headers[ih.ACTOR] = principal.actor
            headers[ih.AUTH_KIND] = principal.kind
            if principal.api_key is not None:
                headers[ih.API_KEY_ID] = principal.api_key.id
        url = f"{self._base}{path or request.path}"
        try:
            async with self._http.request(
                request.method,
                url,
                params=request.rel_url.query,
                data=body or None,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as upstream:
                payload = await upstream.read()
                relayed = {name: upstream.headers[name] for name in _RESPONSE_HEADERS if name in upstream.headers}
                return web.Response(status=upstream.status, body=payload, headers=relayed)
        except (aiohttp.ClientError, TimeoutError) as exc:
            FORWARD_FAILED.inc()
            log.warning("control_forward_failed", url=url, error=repr(exc))
            raise unavailable("Control plane temporarily unavailable", 2, code="control_unavailable") from exc

    async def _read_body(self, request: web.Request) -> bytes:
        if request.content_length is not None and request.content_length > self._max_body:
            raise ApiError(413, f"Request body too large (max {self._max_body} bytes)", "payload_too_large")
        body = bytearray()
        async for chunk in request.content.iter_any():
            body.extend(chunk)
            if len(body) > self._max_body:
                raise ApiError(413, f"Request body too large (max {self._max_body} bytes)", "payload_too_large")
        return bytes(body)


control_proxy_key = web.AppKey("control_proxy", ControlProxy)


async def forward_authenticated(request: web.Request) -> web.Response:
    """The handler of every forwarded route: the auth middleware has set the principal."""
    return await request.app[control_proxy_key].forward(request, request[principal_key])


def forward_prefix(app: web.Application, prefix: str, *, access: frozenset[AuthKind] = ANY_CREDENTIAL) -> None:
    """Forward every method on ``prefix`` and below to the control-engine, for callers of ``access``."""
    prefix = prefix.rstrip("/")
    app[route_access_key].allow(prefix, access)
    app.router.add_route("*", prefix, forward_authenticated)
    app.router.add_route("*", prefix + "/{tail:.+}", forward_authenticated)


async def control_proxy_ctx(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: one pooled HTTP client to the control-engine for the app's lifetime."""
    async with aiohttp.ClientSession(raise_for_status=False) as http:
        app[control_proxy_key] = ControlProxy(app[settings_key], http)
        yield
