"""GuardLayer compatibility (``GUARDLAYER_COMPAT=true``; off by default).

* ``POST /api/v1/api-keys {customer_name}`` — no authentication, as in GuardLayer: creates a
  starter tenant with a ``default`` project and returns its key once (served by the
  control-engine). Off by default because anyone reaching the gateway can create tenants.
* ``POST /api/v1/ingest``, ``POST /api/v1/ingest/batch``, ``GET /api/v1/metrics`` — the v1
  handlers under GuardLayer's paths (same auth, limits and quota).
* ``/api/v1/alerts`` and below — forwarded to the control-engine's ``/v1/alerts``.
"""

from __future__ import annotations

from aiohttp import web

from gateway.auth import ANY_CREDENTIAL, API_KEY_ONLY, route_access_key
from gateway.control_proxy import control_proxy_key
from gateway.ingest import ingest_batch, ingest_one
from gateway.metrics import get_metrics
from gateway.resources import principal_key

API_KEYS_PATH = "/api/v1/api-keys"


async def create_api_key(request: web.Request) -> web.Response:
    return await request.app[control_proxy_key].forward(request, None, "/internal/guardlayer/api-keys")


async def forward_alerts(request: web.Request) -> web.Response:
    path = request.path.removeprefix("/api")
    return await request.app[control_proxy_key].forward(request, request[principal_key], path)


def add_guardlayer_routes(app: web.Application) -> None:
    access = app[route_access_key]
    access.allow("/api/v1/ingest", API_KEY_ONLY)
    access.allow("/api/v1/metrics", ANY_CREDENTIAL)
    access.allow("/api/v1/alerts", ANY_CREDENTIAL)
    app.router.add_post(API_KEYS_PATH, create_api_key)
    app.router.add_post("/api/v1/ingest", ingest_one)
    app.router.add_post("/api/v1/ingest/batch", ingest_batch)
    app.router.add_get("/api/v1/metrics", get_metrics)
    app.router.add_route("*", "/api/v1/alerts", forward_alerts)
    app.router.add_route("*", "/api/v1/alerts/{tail:.+}", forward_alerts)
