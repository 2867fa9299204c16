"""The monthly eval quota of a plan (``monthly_evals``), counted in Redis per tenant and month.

One counter per tenant and calendar month (UTC), shared by every gateway replica (``POST
/v1/eval``) and the eval-engine (evaluations its eval rules sample): both take from it with
one Lua script, so concurrent callers never take more than the limit. Redis unavailable:
**fail open** (evaluations are a quality signal, never worth refusing on an outage); the
caller logs and counts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis

# Take up to ARGV[1] of what is left under ARGV[2] (all of it, or none when ARGV[4] is '1').
_TAKE_LUA = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local want = tonumber(ARGV[1])
local left = tonumber(ARGV[2]) - used
if left < 0 then left = 0 end
local take = want
if take > left then
    if ARGV[4] == '1' then return {0, used} end
    take = left
end
if take > 0 then
    used = redis.call('INCRBY', KEYS[1], take)
    redis.call('EXPIREAT', KEYS[1], ARGV[3])
end
return {take, used}
"""


def month_bounds(now: datetime) -> tuple[str, datetime]:
    """(``YYYY-MM`` of ``now`` in UTC, the next month's start)."""
    now = now.astimezone(UTC)
    nxt = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    return f"{now.year:04d}-{now.month:02d}", nxt


@dataclass(frozen=True)
class Taken:
    granted: int
    used: int  # the month's count after taking
    resets_at: datetime


class EvalQuota:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._take = redis.register_script(_TAKE_LUA)

    @staticmethod
    def key(tenant_id: str, month: str) -> str:
        return f"tl:quota:evals:{tenant_id}:{month}"

    async def take(
        self, tenant_id: str, limit: int, n: int, *, all_or_none: bool, now: datetime | None = None
    ) -> Taken:
        """Take ``n`` evaluations from the month's ``limit`` (as many as are left, or with
        ``all_or_none`` none unless all fit). Raises ``redis`` errors: the caller fails open."""
        month, next_month = month_bounds(now or datetime.now(UTC))
        # Kept a month past its end, for questions about last month's use.
        expire = int(next_month.timestamp()) + 31 * 24 * 3600
        granted, used = await self._take(
            keys=[self.key(tenant_id, month)], args=[n, limit, expire, "1" if all_or_none else "0"]
        )
        return Taken(int(granted), int(used), next_month)

    async def give_back(self, tenant_id: str, n: int, now: datetime | None = None) -> None:
        """Return ``n`` taken evaluations that were not accepted after all (a failed produce)."""
        month, _ = month_bounds(now or datetime.now(UTC))
        await self._redis.decrby(self.key(tenant_id, month), n)
