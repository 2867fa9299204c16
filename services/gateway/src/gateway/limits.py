"""Rate limits and the monthly ingest quota, counted in Redis so every gateway replica agrees.

* **Fixed 1-minute windows**, one Redis counter per (family, subject, window): ``INCR`` and the
  first ``PEXPIRE`` run in one Lua script, so N concurrent requests against a limit L see the
  counts 1..N and exactly L are admitted. The family is the route's declared limit bucket
  (:mod:`gateway.routes`): ``ingest`` (per API key, ``ingest_requests_per_minute``), ``read``
  (per tenant: traces and metrics reads, ``read_rps`` × 60 per window) and ``api`` (per
  tenant, every other authenticated route, same limit as ``read`` but its own counter).
* **Monthly ingest quota** in traces per tenant and calendar month (UTC): a script reserves
  ``n`` traces only if they all fit (a 100-trace batch counts 100 and is refused whole), and a
  produce that fails gives them back.
* ``X-RateLimit-Limit/Remaining/Reset`` are set on every response of an authenticated request
  (also errors and streamed responses: they are applied in ``on_response_prepare``). Unlimited
  plans (enterprise) are not counted and get no such headers.
* 429 ``rate_limited`` (retry after the window) vs 429 ``monthly_quota_exceeded`` (retry next
  month), both with ``Retry-After`` and ``retry_after_seconds``.
* Redis unavailable: limits **fail open** — the request is served, logged and counted in
  ``trulayer_gateway_limits_fail_open_total``. (Authentication never depends on Redis.)
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.auth import Principal
from gateway.resources import principal_key
from gateway.routes import route_table_key
from trulayer_common.config import PlanCatalog, PlanLimits, Tenant
from trulayer_common.errors import ApiError
from trulayer_common.logging import get_logger
from trulayer_common.routing import LimitBucket

log = get_logger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
WINDOW_SECONDS = 60
LIMITED = Counter("trulayer_gateway_rate_limited_total", "requests refused with 429", ["code"])
FAIL_OPEN = Counter(
    "trulayer_gateway_limits_fail_open_total", "limit checks skipped because Redis was unavailable", ["check"]
)

_WINDOW_LUA = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""
_QUOTA_LUA = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local n = tonumber(ARGV[1])
if used + n > tonumber(ARGV[2]) then return {0, used} end
used = redis.call('INCRBY', KEYS[1], n)
redis.call('EXPIREAT', KEYS[1], ARGV[3])
return {1, used}
"""


@dataclass(frozen=True, slots=True)
class WindowState:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # unix seconds when the window ends

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    subject: str
    limit: int | None


def classify(bucket: LimitBucket, principal: Principal, limits: PlanLimits) -> Family:
    """Which window a request of the route's ``bucket`` counts in, and its limit (``None``: not
    limited). Ingest windows are per API key, the others per tenant."""
    if bucket == "none":
        return Family("none", principal.tenant.id, None)
    if bucket == "ingest" and principal.api_key is not None:
        return Family("ingest", principal.api_key.id, limits.ingest_requests_per_minute)
    return Family("read" if bucket == "read" else "api", principal.tenant.id, limits.read_requests_per_minute)


def month_bounds(now: datetime) -> tuple[str, int]:
    """(``YYYY-MM`` of ``now`` in UTC, unix seconds of the next month's start)."""
    now = now.astimezone(UTC)
    nxt = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    return f"{now.year:04d}-{now.month:02d}", int(nxt.timestamp())


class RateLimiter:
    def __init__(self, redis: Redis, plans: PlanCatalog) -> None:
        self._redis = redis
        self.plans = plans
        self._window = redis.register_script(_WINDOW_LUA)
        self._quota = redis.register_script(_QUOTA_LUA)

    async def hit(self, family: Family, now: float | None = None) -> WindowState | None:
        """Count one request in the current window; ``None`` when unlimited or Redis is down."""
        if family.limit is None:
            return None
        now = time.time() if now is None else now
        start = int(now) // WINDOW_SECONDS * WINDOW_SECONDS
        key = f"tl:rl:{family.name}:{family.subject}:{start}"
        try:
            count = int(await self._window(keys=[key], args=[WINDOW_SECONDS * 2 * 1000]))
        except RedisError as exc:
            FAIL_OPEN.labels(family.name).inc()
            log.warning("rate_limit_fail_open", family=family.name, error=repr(exc))
            return None
        return WindowState(
            allowed=count <= family.limit,
            limit=family.limit,
            remaining=max(family.limit - count, 0),
            reset=start + WINDOW_SECONDS,
        )

    async def reserve_traces(self, tenant: Tenant, n: int, now: datetime | None = None) -> bool:
        """Take ``n`` traces from the tenant's monthly quota, all or none.

        Raises 429 ``monthly_quota_exceeded`` when they do not fit. Returns whether anything
        was reserved (False: unlimited plan, or Redis down → fail open), i.e. whether a failed
        produce must :meth:`release_traces`.
        """
        limit = self.plans.for_tenant(tenant).monthly_traces
        if limit is None or n <= 0:
            return False
        month, next_month = month_bounds(now or datetime.now(UTC))
        try:
            ok, used = await self._quota(
                keys=[self._quota_key(tenant.id, month)],
                # Kept a month past its end, for support questions about last month.
                args=[n, limit, next_month + 31 * 24 * 3600],
            )
        except RedisError as exc:
            FAIL_OPEN.labels("monthly_quota").inc()
            log.warning("quota_fail_open", tenant_id=tenant.id, error=repr(exc))
            return False
        if not ok:
            LIMITED.labels("monthly_quota_exceeded").inc()
            retry = max(next_month - int(time.time()), 1)
            raise ApiError(
                429,
                "Monthly quota exceeded",
                "monthly_quota_exceeded",
                extra={
                    "retry_after_seconds": retry,
                    "limit": limit,
                    "used": int(used),
                    "requested": n,
                    "resets_at": datetime.fromtimestamp(next_month, UTC).isoformat(),
                },
                headers={"Retry-After": str(retry)},
            )
        return True

    async def release_traces(self, tenant: Tenant, n: int, now: datetime | None = None) -> None:
        """Give back a reservation whose traces were not accepted (the produce failed)."""
        month, _ = month_bounds(now or datetime.now(UTC))
        try:
            await self._redis.decrby(self._quota_key(tenant.id, month), n)
        except RedisError as exc:
            log.warning("quota_release_failed", tenant_id=tenant.id, traces=n, error=repr(exc))

    @staticmethod
    def _quota_key(tenant_id: str, month: str) -> str:
        return f"tl:quota:traces:{tenant_id}:{month}"


rate_limiter_key = web.AppKey("rate_limiter", RateLimiter)
_rate_headers_key = web.RequestKey("rate_headers", WindowState)


@web.middleware
async def limits_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count the authenticated request in its window; 429 ``rate_limited`` over the limit.

    Runs after authentication (it needs the principal). Without a limiter (``LIMITS_ENABLED``
    false) requests pass uncounted.
    """
    principal = request.get(principal_key)
    limiter = request.app.get(rate_limiter_key)
    spec = request.app[route_table_key].spec_of(request)
    if principal is None or limiter is None or spec is None:
        return await handler(request)
    family = classify(spec.limit, principal, limiter.plans.for_tenant(principal.tenant))
    state = await limiter.hit(family)
    if state is not None:
        request[_rate_headers_key] = state
        if not state.allowed:
            LIMITED.labels("rate_limited").inc()
            retry = max(state.reset - int(time.time()), 1)
            raise ApiError(
                429,
                "Rate limit exceeded",
                "rate_limited",
                extra={"retry_after_seconds": retry, "limit": state.limit},
                headers={"Retry-After": str(retry)},
            )
    return await handler(request)


async def add_rate_limit_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every response of a counted request, errors and streams included."""
    state = request.get(_rate_headers_key)
    if state is not None:
        response.headers.update(state.headers())
