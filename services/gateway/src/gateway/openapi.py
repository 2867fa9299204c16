"""``GET /openapi.json`` (OpenAPI 3.1, generated from the pydantic wire shapes) and ``GET /docs``.

Routes are described once in :data:`ROUTES`; request and response schemas come from the
models in ``trulayer_common.schemas``, so the document follows the code. A module that adds
routes appends :class:`DocumentedRoute` entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from aiohttp import web
from pydantic import BaseModel, TypeAdapter

from trulayer_common.http import json_response
from trulayer_common.schemas import BatchRequest, TraceRequest
from trulayer_common.schemas.responses import (
    BatchIngestResponse,
    DuplicateResponse,
    ErrorBody,
    IngestResponse,
    MetricsResponse,
    TraceDetail,
    TraceList,
)

TRACE_FILTERS = (
    ("project_id", "string", "project id or name of the tenant"),
    ("model", "string", "exact model name"),
    ("error", "boolean", "true: only traces with an error; false: only without"),
    ("failure_type", "string", "timeout | rate_limit | invalid_response | context_length"),
    ("from", "string", "ISO 8601 or unix seconds, inclusive, on started_at"),
    ("to", "string", "ISO 8601 or unix seconds, exclusive"),
    ("latency_min", "number", "ms"),
    ("latency_max", "number", "ms"),
    ("token_count_min", "integer", "total tokens"),
    ("token_count_max", "integer", "total tokens"),
    ("tag_key", "string", "tag present (list tags) or key present (map tags)"),
    ("tag_value", "string", "with tag_key: map value, or list tag 'key:value'"),
    ("session_id", "string", ""),
)


@dataclass(frozen=True)
class DocumentedRoute:
    method: str
    path: str
    summary: str
    request: type[Any] | None = None  # a BaseModel or a TypedDict
    responses: dict[int, type[BaseModel] | None] = field(default_factory=dict)
    query: tuple[tuple[str, str, str], ...] = ()
    errors: tuple[int, ...] = (400, 401, 403, 413, 415, 422, 503)


ROUTES: list[DocumentedRoute] = [
    DocumentedRoute(
        "post",
        "/v1/ingest",
        "Ingest one trace (idempotent by id)",
        TraceRequest,
        {201: IngestResponse, 200: DuplicateResponse},
    ),
    DocumentedRoute(
        "post",
        "/v1/ingest/batch",
        "Ingest up to 100 traces, or GuardLayer calls",
        BatchRequest,
        {201: BatchIngestResponse},
    ),
    DocumentedRoute(
        "get",
        "/v1/traces",
        "List traces (newest first, cursor pagination)",
        None,
        {200: TraceList},
        (*TRACE_FILTERS, ("limit", "integer", "1..200, default 50"), ("cursor", "string", "next_cursor")),
        (400, 401, 403, 404),
    ),
    DocumentedRoute(
        "get",
        "/v1/traces/{trace_id}",
        "One trace with spans, events, feedback, evaluations",
        None,
        {200: TraceDetail},
        (),
        (401, 404),
    ),
    DocumentedRoute(
        "get",
        "/v1/metrics",
        "Summary metrics; with hours=N also GuardLayer's breakdowns",
        None,
        {200: MetricsResponse},
        (*TRACE_FILTERS, ("hours", "number", "window ending now")),
        (400, 401, 403, 404),
    ),
]


def build_document(routes: list[DocumentedRoute]) -> dict[str, Any]:
    models: set[type[Any]] = {ErrorBody}
    for route in routes:
        if route.request is not None:
            models.add(route.request)
        models.update(m for m in route.responses.values() if m is not None)
    requests = {r.request for r in routes}
    ordered = sorted(models, key=lambda m: m.__name__)
    _, schema = TypeAdapter.json_schemas(
        [(m.__name__, "validation" if m in requests else "serialization", TypeAdapter(m)) for m in ordered],
        ref_template="#/components/schemas/{model}",
    )
    error_ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
    paths: dict[str, Any] = {}
    for route in routes:
        operation: dict[str, Any] = {"summary": route.summary, "security": [{"apiKey": []}, {"bearer": []}]}
        if route.request is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{route.request.__name__}"}}},
            }
        params = [
            {"name": name, "in": "query", "required": False, "schema": {"type": kind}, "description": text}
            for name, kind, text in route.query
        ]
        if "{trace_id}" in route.path:
            params.append({"name": "trace_id", "in": "path", "required": True, "schema": {"type": "string"}})
        if params:
            operation["parameters"] = params
        responses: dict[str, Any] = {}
        for status, model in route.responses.items():
            content = (
                {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}} if model else {}
            )
            responses[str(status)] = {"description": "OK", **({"content": content} if content else {})}
        for status in route.errors:
            responses[str(status)] = {"description": "Error", **error_ref}
        operation["responses"] = responses
        paths.setdefault(route.path, {})[route.method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "TruLayer-compatible API", "version": "v1"},
        "paths": paths,
        "components": {
            "schemas": schema.get("$defs", {}),
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }


@cache
def _document() -> dict[str, Any]:
    return build_document(ROUTES)


async def openapi_json(_: web.Request) -> web.Response:
    return json_response(_document())


_DOCS = """<!doctype html><html><head><title>TruLayer API</title><meta charset="utf-8"/></head>
<body><redoc spec-url="/openapi.json"></redoc>
<script src="https://cdn.redoc.ly/redoc/latest/bundles/redoc.standalone.js"></script></body></html>"""


async def docs(_: web.Request) -> web.Response:
    """Renders /openapi.json with ReDoc (loaded by the browser from its CDN)."""
    return web.Response(text=_DOCS, content_type="text/html")


def add_openapi_routes(app: web.Application) -> None:
    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_get("/docs", docs)
