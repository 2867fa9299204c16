"""Route declarations: each HTTP operation declared once, read by auth, limits and OpenAPI.

A :class:`RouteSpec` says everything about an operation except its handler: method, path
template, who may call it (:class:`~trulayer_common.access.Access`), which rate-limit bucket it
counts in, and its OpenAPI description. The gateway binds a handler to each spec it serves or
forwards; the control-engine binds handlers to the control-plane specs of
:mod:`trulayer_common.control_api` and checks the same access again.

Paths are checked before any decision (:func:`path_guard`): a request whose path holds
percent-encoded dot segments, slashes or backslashes, dot segments, empty segments or control
characters is refused (400 ``invalid_path``), so the path that was authorised is exactly the
path that is served or forwarded. Path parameters must be plain identifiers
(:data:`SEGMENT`); a forward rebuilds the upstream path from the template and the parameters,
each quoted, never from the raw request path.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from aiohttp import web

from trulayer_common.access import Access
from trulayer_common.errors import ApiError, bad_request

LimitBucket = Literal["ingest", "read", "api", "none"]
"""``ingest``: the API key's ingest window; ``read``: the tenant's read window; ``api``: the
tenant's window for every other authenticated route; ``none``: not counted."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._:~-]{0,255}$")
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ENCODED_SEPARATORS = re.compile(r"%(2e|2f|5c|00)", re.IGNORECASE)
STANDARD_ERRORS = (400, 401, 403, 404, 413, 415, 422, 429)


@dataclass(frozen=True)
class QueryParam:
    name: str
    kind: str  # a JSON Schema type: string, integer, number, boolean
    description: str = ""
    enum: tuple[str, ...] = ()


@dataclass(frozen=True)
class Operation:
    """The OpenAPI side of a route. ``request`` and the response types are pydantic models or
    TypedDicts; ``None`` as a response type means an empty or non-JSON body."""

    summary: str
    tag: str
    request: type[Any] | None = None
    responses: Mapping[int, type[Any] | None] = field(default_factory=dict)
    query: tuple[QueryParam, ...] = ()
    errors: tuple[int, ...] = STANDARD_ERRORS
    content_type: str = "application/json"
    description: str = ""
    # Media types of a success answer that is not a JSON model (a stream: CSV, SSE).
    response_media: tuple[str, ...] = ()
    # Other media types the request body, and the 2xx answer to it, may also use (binary
    # encodings of the same message: OTLP's application/x-protobuf).
    binary_content_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class RouteSpec:
    method: str
    path: str
    access: Access
    limit: LimitBucket
    doc: Operation
    name: str  # the OpenAPI operationId, and the control-engine's handler name

    @property
    def params(self) -> list[str]:
        return _PARAM.findall(self.path)


def path_param(request: web.Request, name: str) -> str:
    """A path parameter, which must be a plain identifier (else 404: no such resource)."""
    value = request.match_info.get(name, "")
    if not SEGMENT.match(value):
        raise ApiError(404, "Not found", "not_found")
    return value


def fill_path(template: str, request: web.Request) -> str:
    """``template`` with each ``{param}`` replaced by the request's (checked, quoted) value."""
    return _PARAM.sub(lambda m: quote(path_param(request, m.group(1)), safe=""), template)


def check_path(raw_path: str, path: str) -> None:
    """400 ``invalid_path`` for a path that could mean two things to two parsers."""
    # Both forms: a double-encoded separator is a single-encoded one once decoded.
    if _ENCODED_SEPARATORS.search(raw_path) or _ENCODED_SEPARATORS.search(path):
        raise bad_request("Invalid path: encoded '.', '/', '\\' or NUL", "invalid_path")
    segments = path.split("/")[1:]
    if any(s in (".", "..") for s in segments) or "//" in path or "\\" in path:
        raise bad_request("Invalid path: dot or empty segments", "invalid_path")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        raise bad_request("Invalid path: control characters", "invalid_path")


@web.middleware
async def path_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """:func:`check_path` on every request, before authentication and routing decisions."""
    check_path(request.raw_path.partition("?")[0], request.path)
    return await handler(request)
