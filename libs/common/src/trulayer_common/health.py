"""``/healthz`` (liveness), ``/readyz`` (dependencies) and ``/metrics`` (Prometheus) routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

ReadinessCheck = Callable[[], Awaitable[bool]]
readiness_checks = web.AppKey("readiness_checks", dict[str, ReadinessCheck])


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks = request.app.get(readiness_checks, {})
    results = {name: await check() for name, check in checks.items()}
    ok = all(results.values())
    return web.json_response({"status": "ready" if ok else "not_ready", "checks": results}, status=200 if ok else 503)


def metrics_handler(
    registry: CollectorRegistry = REGISTRY,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return metrics


def add_health_routes(app: web.Application, checks: dict[str, ReadinessCheck]) -> None:
    app[readiness_checks] = checks
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler())
