"""Control-plane routes: authenticated and rate-limited here, served by the control-engine.

The gateway forwards exactly the operations declared in
:data:`trulayer_common.control_api.CONTROL_ROUTES` (and their GuardLayer aliases), each through
:func:`forward_to` its upstream path template. The upstream path is rebuilt from that template
and the request's path parameters (each a plain identifier, quoted), never copied from the raw
request: the path that was authorised is the path that is served.

A forward carries the request body (≤ ``CONTROL_MAX_BODY_BYTES``, else 413), the query, the
caller's request id, the authenticated principal (:mod:`trulayer_common.principal`, built from
scratch: a client's own ``X-Trulayer-*`` headers are never copied) and the shared
``INTERNAL_TOKEN``. The control-engine's answer (status, JSON body, ETag/Cache-Control/
Location/Retry-After) is relayed as is. A control-engine that cannot be reached is a 503
``control_unavailable``; nothing is retried, since writes are not idempotent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from prometheus_client import Counter
from yarl import URL

from gateway.resources import principal_key, settings_key
from gateway.settings import GatewaySettings
from trulayer_common import principal as forwarded
from trulayer_common.errors import ApiError, unavailable
from trulayer_common.http import REQUEST_ID_HEADER, get_request_id
from trulayer_common.logging import get_logger
from trulayer_common.routing import Handler, fill_path

log = get_logger(__name__)
FORWARD_FAILED = Counter("trulayer_gateway_control_forward_failed_total", "forwards the control-engine did not answer")

_REQUEST_HEADERS = ("Content-Type", "Accept", "If-None-Match", "If-Match")
_RESPONSE_HEADERS = ("Content-Type", "ETag", "Cache-Control", "Location", "Retry-After")


class ControlProxy:
    def __init__(self, settings: GatewaySettings, http: aiohttp.ClientSession) -> None:
        self._base = URL(settings.control_engine_url.rstrip("/"))
        self._token = settings.internal_token.get_secret_value() if settings.internal_token else None
        self._http = http
        self._timeout = aiohttp.ClientTimeout(total=settings.control_timeout_seconds)
        self._max_body = settings.control_max_body_bytes

    async def forward(self, request: web.Request, path: str) -> web.Response:
        """Send ``request`` to the control-engine at ``path`` (already encoded) and relay the answer."""
        if self._token is None:
            raise ApiError(503, "Control plane not configured (INTERNAL_TOKEN unset)", "control_unavailable")
        body = await self._read_body(request)
        headers = CIMultiDict[str]()
        for name in _REQUEST_HEADERS:
            if name in request.headers:
                headers[name] = request.headers[name]
        headers[REQUEST_ID_HEADER] = get_request_id(request)
        headers[forwarded.INTERNAL_TOKEN_HEADER] = self._token
        principal = request.get(principal_key)
        if principal is not None:
            headers.update(principal.forwarded().to_headers())
        url = self._base.with_path(self._base.raw_path.rstrip("/") + path, encoded=True)
        try:
            async with self._http.request(
                request.method,
                url.with_query(request.rel_url.query),
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
            log.warning("control_forward_failed", path=path, error=repr(exc))
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


def forward_to(upstream: str) -> Handler:
    """The handler of a forwarded route: the control-engine's ``upstream`` template, filled in."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return await request.app[control_proxy_key].forward(request, fill_path(upstream, request))

    return handler


async def control_proxy_ctx(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: one pooled HTTP client to the control-engine for the app's lifetime."""
    async with aiohttp.ClientSession(raise_for_status=False) as http:
        app[control_proxy_key] = ControlProxy(app[settings_key], http)
        yield
