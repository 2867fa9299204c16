"""aiohttp plumbing shared by every service: request ids, the error body, JSON body parsing.

* Every response carries ``X-Request-Id`` (the caller's, if sane, else a new one), and the id
  is bound into every log line of the request.
* Every error leaves as ``{"error", "code", "request_id"}`` with its documented status —
  including aiohttp's own (unknown route, wrong method, body too large) and unexpected ones.
* :func:`read_json_model` (and :func:`read_json`) map body problems onto statuses: wrong
  Content-Type → 415, too large → 413, not JSON → 400, a missing required field → 422, any
  other mismatch → 400, and name the field; a number JSON storage cannot keep (beyond 64
  bits, non-finite) anywhere in the body → 400.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware
from aiohttp.web_protocol import RequestPayloadError
from prometheus_client import Counter, Histogram
from pydantic import BaseModel, TypeAdapter, ValidationError

from trulayer_common.errors import ApiError
from trulayer_common.logging import bound_context, get_logger
from trulayer_common.schemas.bounds import refuse_unstorable_numbers

log = get_logger(__name__)
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REQUEST_ID_HEADER = "X-Request-Id"
request_id_key = web.RequestKey("request_id", str)
_SANE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

HTTP_REQUESTS = Counter(
    "trulayer_http_requests_total", "HTTP requests answered", ["service", "route", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "trulayer_http_request_duration_seconds",
    "HTTP request handling time",
    ["service", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

_AIOHTTP_CODES = {
    404: ("Not found", "not_found"),
    405: ("Method not allowed", "method_not_allowed"),
    413: ("Request body too large", "payload_too_large"),
}


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json", headers=headers)


def error_response(exc: ApiError, request_id: str | None) -> web.Response:
    return json_response(exc.body(request_id), status=exc.status, headers=exc.headers)


def request_id_middleware(service: str) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if _SANE_ID.match(incoming) else uuid.uuid4().hex
        request[request_id_key] = request_id
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
        started = time.perf_counter()
        with bound_context(request_id=request_id):
            try:
                response = await handler(request)
            except ApiError as exc:
                response = error_response(exc, request_id)
            except web.HTTPException as exc:
                if exc.status < 400:
                    raise
                text, code = _AIOHTTP_CODES.get(exc.status, (exc.reason, "http_error"))
                response = error_response(ApiError(exc.status, text, code), request_id)
                for name in ("Allow",):
                    if name in exc.headers:
                        response.headers[name] = exc.headers[name]
            except Exception:
                log.exception("request_failed", route=route, method=request.method)
                response = error_response(ApiError(500, "Internal server error", "internal_error"), request_id)
            response.headers[REQUEST_ID_HEADER] = request_id
            HTTP_REQUESTS.labels(service, route, request.method, str(response.status)).inc()
            HTTP_LATENCY.labels(service, route).observe(time.perf_counter() - started)
            return response

    return middleware


def get_request_id(request: web.Request) -> str:
    return str(request.get(request_id_key, ""))


async def read_body(request: web.Request, max_bytes: int) -> bytes:
    """The raw JSON body after the Content-Type and size checks (413 before reading it all)."""
    if request.content_type != "application/json":
        raise ApiError(415, "Content-Type must be application/json", "unsupported_media_type")
    body = await read_limited(request, max_bytes)
    if not body:
        raise ApiError(400, "Request body is empty", "malformed_json")
    return body


async def read_limited(request: web.Request, max_bytes: int) -> bytes:
    """The body, whatever its type; 413 as soon as it exceeds ``max_bytes`` (before reading it
    all when ``Content-Length`` says so). aiohttp undoes a ``Content-Encoding`` in bounded chunks
    as the body streams in, so the limit holds for the decoded size too; data that is not valid
    for its ``Content-Encoding`` is a 400."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise ApiError(413, f"Request body too large (max {max_bytes} bytes)", "payload_too_large")
    body = bytearray()
    try:
        async for chunk in request.content.iter_any():
            body.extend(chunk)
            if len(body) > max_bytes:
                raise ApiError(413, f"Request body too large (max {max_bytes} bytes)", "payload_too_large")
    except RequestPayloadError:
        raise ApiError(400, "Request body is not valid data of its Content-Encoding", "bad_content_encoding") from None
    return bytes(body)


def validation_error(exc: ValidationError) -> ApiError:
    """422 when a required field is missing, 400 for any other mismatch; names the fields."""
    details = []
    status = 400
    for err in exc.errors(include_url=False, include_input=False):
        if err["type"] == "json_invalid":
            return ApiError(400, "Malformed JSON body", "malformed_json")
        field = ".".join(str(part) for part in err["loc"]) or "body"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            status = 422
        details.append({"field": field, "message": message})
    first = details[0] if details else {"field": "body", "message": "invalid"}
    return ApiError(
        status,
        f"Invalid field '{first['field']}': {first['message']}",
        "validation_error",
        extra={"details": details},
    )


async def read_json_model(request: web.Request, model: type[M], max_bytes: int) -> M:
    return parse_json(await read_body(request, max_bytes), model.model_validate_json)


async def read_json(request: web.Request, adapter: TypeAdapter[T], max_bytes: int) -> T:
    """:func:`read_json_model` for a TypedDict (or any type) behind a TypeAdapter."""
    return parse_json(await read_body(request, max_bytes), adapter.validate_json)


def parse_json(body: bytes, validate: Callable[[bytes], T]) -> T:
    """``validate(body)`` with the API's errors: 400/422 naming the field on a mismatch, and 400
    for a number that JSON storage could not keep (an integer beyond 64 bits, ``NaN``, ``1e999``;
    :func:`~trulayer_common.schemas.bounds.refuse_unstorable_numbers`) anywhere in the body, so
    no free-form field (metadata, config) carries one downstream."""
    try:
        value = validate(body)
    except ValidationError as exc:
        raise validation_error(exc) from None
    refuse_unstorable_numbers(body)
    return value
