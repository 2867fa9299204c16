"""``GET /openapi.json`` (OpenAPI 3.1) and ``GET /docs``, generated from the route table.

Every declared route (:mod:`gateway.api`) is documented: its access (credential kinds, API-key
scope, minimum role), its request and response schemas (from the pydantic models and
TypedDicts in ``trulayer_common.schemas``), its query and path parameters and its error
responses. The document follows the code because it is built from the same declarations.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from pydantic import TypeAdapter

from trulayer_common.access import Access
from trulayer_common.routing import SEGMENT, RouteSpec
from trulayer_common.schemas.responses import ErrorBody

_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "api_key": [{"apiKeyHeader": []}, {"bearerAuth": []}],
    "session": [{"bearerAuth": []}],
}
_ERROR_TEXT = {
    400: "Malformed request: body not JSON, schema mismatch or a bad parameter",
    401: "Missing or invalid credentials",
    402: "Plan upgrade needed or quota exhausted",
    403: "Valid credentials, not allowed (kind, scope, role, tenant, archived project)",
    404: "Not found",
    406: "Not acceptable: the response type this route serves was not accepted",
    409: "Conflict",
    413: "Body too large",
    415: "Wrong Content-Type",
    422: "A required field is missing or invalid",
    429: "Rate limited or monthly quota exceeded (Retry-After)",
    503: "Temporarily unavailable (Retry-After): broker, control plane or start-up",
}
# Path parameters that are not forwarded may hold any client-chosen id (traces); the rest are
# ids the platform minted, checked against the identifier pattern.
_FREE_PARAMS = {"trace_id"}


def _access_text(access: Access) -> str:
    if access.public:
        return "No authentication."
    kinds = []
    if "api_key" in access.kinds:
        kinds.append(f"API key (scope `{access.scope}`)" if access.scope else "API key")
    if "session" in access.kinds:
        kinds.append(f"dashboard session (role ≥ `{access.role}`)")
    return "Credentials: " + " or ".join(kinds) + "."


def _security(access: Access) -> list[dict[str, list[str]]]:
    schemes: list[dict[str, list[str]]] = []
    for kind in ("api_key", "session"):
        if kind in access.kinds:
            schemes.extend(s for s in _SECURITY[kind] if s not in schemes)
    return schemes


def _ref(model: type[Any]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _operation(spec: RouteSpec) -> dict[str, Any]:
    doc = spec.doc
    description = " ".join(part for part in (doc.description, _access_text(spec.access)) if part)
    operation: dict[str, Any] = {
        "operationId": spec.name,
        "summary": doc.summary,
        "description": description,
        "tags": [doc.tag],
        "security": _security(spec.access),
        "x-trulayer-limit": spec.limit,
    }
    binary = {ct: {"schema": {"type": "string", "contentMediaType": ct}} for ct in doc.binary_content_types}
    if doc.request is not None:
        content: dict[str, Any] = {doc.content_type: {"schema": _ref(doc.request)}, **binary}
        operation["requestBody"] = {"required": True, "content": content}
    params: list[dict[str, Any]] = []
    for name in spec.params:
        schema: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 256}
        if name not in _FREE_PARAMS:
            schema["pattern"] = SEGMENT.pattern
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    for q in doc.query:
        q_schema: dict[str, Any] = {"type": q.kind}
        if q.enum:
            q_schema["enum"] = list(q.enum)
        params.append(
            {"name": q.name, "in": "query", "required": False, "schema": q_schema, "description": q.description}
        )
    if params:
        operation["parameters"] = params
    responses: dict[str, Any] = {}
    for status, model in doc.responses.items():
        answer: dict[str, Any] = {"description": "OK" if status < 400 else _ERROR_TEXT.get(status, "Error")}
        if model is not None:
            answer["content"] = {"application/json": {"schema": _ref(model)}}
            if status < 300:
                answer["content"].update(binary)
        elif status < 300 and doc.response_media:
            answer["content"] = {media: {"schema": {"type": "string"}} for media in doc.response_media}
        responses[str(status)] = answer
    errors = set(doc.errors)
    if not spec.access.public:
        errors |= {401, 403}
    for status in sorted(errors):
        if str(status) not in responses:
            responses[str(status)] = {
                "description": _ERROR_TEXT.get(status, "Error"),
                "content": {"application/json": {"schema": _ref(ErrorBody)}},
            }
    operation["responses"] = responses
    return operation


def build_document(specs: list[RouteSpec]) -> dict[str, Any]:
    requests = {s.doc.request for s in specs if s.doc.request is not None}
    models: set[type[Any]] = {ErrorBody, *requests}
    for spec in specs:
        models.update(m for m in spec.doc.responses.values() if m is not None)
    ordered = sorted(models, key=lambda m: m.__name__)
    names = [m.__name__ for m in ordered]
    if len(set(names)) != len(names):
        raise ValueError(f"two schema types share a name: {sorted(n for n in names if names.count(n) > 1)}")
    _, schema = TypeAdapter.json_schemas(
        [(m.__name__, "validation" if m in requests else "serialization", TypeAdapter(m)) for m in ordered],
        ref_template="#/components/schemas/{model}",
    )
    paths: dict[str, Any] = {}
    for spec in specs:
        paths.setdefault(spec.path, {})[spec.method.lower()] = _operation(spec)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "TruLayer-compatible API",
            "version": "v1",
            "description": "The public HTTP API of the platform; compatible with the TruLayer v1 API.",
        },
        "paths": paths,
        "components": {
            "schemas": schema.get("$defs", {}),
            "securitySchemes": {
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (tl_...) or a session JWT",
                },
            },
        },
    }


class OpenApiDocument:
    """The document of a route table, built on first request (a few ms) and kept."""

    def __init__(self, specs: list[RouteSpec]) -> None:
        self._specs = specs
        self._body: bytes | None = None

    def body(self) -> bytes:
        if self._body is None:
            self._body = orjson.dumps(build_document(self._specs))
        return self._body


openapi_key = web.AppKey("openapi", OpenApiDocument)


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=request.app[openapi_key].body(), content_type="application/json")


_DOCS = """<!doctype html><html><head><title>TruLayer API</title><meta charset="utf-8"/></head>
<body><redoc spec-url="/openapi.json"></redoc>
<script src="https://cdn.redoc.ly/redoc/latest/bundles/redoc.standalone.js"></script></body></html>"""


async def docs(_: web.Request) -> web.Response:
    """Renders /openapi.json with ReDoc (loaded by the browser from its CDN)."""
    return web.Response(text=_DOCS, content_type="text/html")
