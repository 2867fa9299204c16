"""``/healthz`` (liveness), ``/readyz`` (readiness) and ``/metrics`` (Prometheus) routes.

* **Readiness** (``/readyz``): can this instance do its work right now? Each check is an async
  callable returning ``True`` when its dependency is usable (broker acknowledges, Redis and
  ClickHouse answer, the config log is caught up). Not ready → 503: a load balancer stops
  sending traffic, nothing is restarted.
* **Liveness** (``/healthz``): is this process still doing its job at all? Each check is a
  plain callable returning ``None`` while alive, or the reason it is dead (a consumer loop or
  stream agent that died for good). Dead → 503 with the reasons, so Kubernetes restarts the
  process; in the local one-process stack, :func:`dead_checks` is what the stack watches to
  exit non-zero. Liveness never depends on other services: a broker outage makes a service
  unready, not dead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from pydantic import BaseModel

from trulayer_common.access import PUBLIC
from trulayer_common.routing import Handler, Operation, RouteSpec

ReadinessCheck = Callable[[], Awaitable[bool]]
LivenessCheck = Callable[[], str | None]
readiness_checks = web.AppKey("readiness_checks", dict[str, ReadinessCheck])
liveness_checks = web.AppKey("liveness_checks", dict[str, LivenessCheck])


def task_liveness(get_task: Callable[[], asyncio.Future[Any] | None]) -> LivenessCheck:
    """A liveness check for a long-running task: dead once it ended with an exception (a task not
    started yet, still running, or stopped cleanly/cancelled on shutdown counts as alive)."""

    def check() -> str | None:
        task = get_task()
        if task is None or not task.done() or task.cancelled():
            return None
        exc = task.exception()
        return None if exc is None else f"{type(exc).__name__}: {exc}"[:500]

    return check


def dead_checks(app: web.Application) -> dict[str, str]:
    """``name → reason`` for every failing liveness check of ``app`` (empty while alive)."""
    dead: dict[str, str] = {}
    for name, check in app.get(liveness_checks, {}).items():
        reason = check()
        if reason is not None:
            dead[name] = reason
    return dead


async def healthz(request: web.Request) -> web.Response:
    dead = dead_checks(request.app)
    if dead:
        return web.json_response({"status": "dead", "checks": dead}, status=503)
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks = request.app.get(readiness_checks, {})
    results = {name: await check() for name, check in checks.items()}
    ok = all(results.values()) and not dead_checks(request.app)
    return web.json_response({"status": "ready" if ok else "not_ready", "checks": results}, status=200 if ok else 503)


def metrics_handler(
    registry: CollectorRegistry = REGISTRY,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return metrics


class HealthStatus(BaseModel):
    status: str
    checks: dict[str, bool | str] | None = None


def health_routes() -> list[tuple[RouteSpec, Handler]]:
    """The three routes with their declarations (public, not rate-limited)."""
    tag = "health"
    return [
        (
            RouteSpec(
                "GET",
                "/healthz",
                PUBLIC,
                "none",
                Operation(
                    "Liveness: 503 with the reasons when a loop died",
                    tag,
                    None,
                    {200: HealthStatus, 503: HealthStatus},
                    errors=(),
                ),
                "health.liveness",
            ),
            healthz,
        ),
        (
            RouteSpec(
                "GET",
                "/readyz",
                PUBLIC,
                "none",
                Operation("Readiness of each dependency", tag, None, {200: HealthStatus, 503: HealthStatus}, errors=()),
                "health.readiness",
            ),
            readyz,
        ),
        (
            RouteSpec(
                "GET",
                "/metrics",
                PUBLIC,
                "none",
                Operation("Prometheus metrics (text format)", tag, None, {200: None}, errors=()),
                "health.metrics",
            ),
            metrics_handler(),
        ),
    ]


def add_health_checks(
    app: web.Application,
    checks: dict[str, ReadinessCheck],
    liveness: dict[str, LivenessCheck] | None = None,
) -> None:
    """``checks`` decide readiness, ``liveness`` decides liveness (routes registered elsewhere)."""
    app[readiness_checks] = checks
    app[liveness_checks] = dict(liveness or {})


def add_health_routes(
    app: web.Application,
    checks: dict[str, ReadinessCheck],
    liveness: dict[str, LivenessCheck] | None = None,
) -> None:
    """:func:`add_health_checks` and the three routes."""
    add_health_checks(app, checks, liveness)
    for spec, handler in health_routes():
        app.router.add_route(spec.method, spec.path, handler)
