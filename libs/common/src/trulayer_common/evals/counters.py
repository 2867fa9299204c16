"""The counters of each eval rule: ``matched, sampled, evaluated, failed, skipped,
last_evaluated_at``, so that a rule that never runs is visible on the rule itself.

One Redis hash per rule (``tl:evalrule:<id>``), incremented by the eval-engine and read by the
control-engine when it lists rules. Their meaning:

* ``matched``: new traces of the rule's project that passed its filter;
* ``sampled``: of those, the ones its sample rate picked (``matched - sampled`` were not);
* ``evaluated`` / ``failed``: sampled evaluations that ended ``complete`` / ``failed``;
* ``skipped``: sampled evaluations whose latest state is ``skipped`` (the judge could not be
  reached: each waits for its next attempt, or gave up at the maximum age; one that completes
  later moves to ``evaluated``), so ``sampled - evaluated - failed - skipped`` are in flight;
* ``last_evaluated_at``: when an evaluation of the rule last ended ``complete`` or ``failed``.

Counting is at least once, like the stream it counts: after a crash of the eval-engine the
traces it had read but not committed are counted again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

COUNTERS = ("matched", "sampled", "evaluated", "failed", "skipped")
KEY_TTL_SECONDS = 400 * 24 * 3600  # refreshed on every update; a deleted rule's hash expires


def counters_key(rule_id: str) -> str:
    return f"tl:evalrule:{rule_id}"


@dataclass
class CounterDeltas:
    """Increments per rule, accumulated in memory and written in one round trip."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    last_evaluated_ms: dict[str, int] = field(default_factory=dict)

    def add(self, rule_id: str, counter: str, n: int = 1) -> None:
        if n:
            per_rule = self.counts.setdefault(rule_id, {})
            per_rule[counter] = per_rule.get(counter, 0) + n

    def evaluated_at(self, rule_id: str, at: datetime) -> None:
        ms = int(at.timestamp() * 1000)
        if ms > self.last_evaluated_ms.get(rule_id, 0):
            self.last_evaluated_ms[rule_id] = ms

    def merge(self, other: CounterDeltas) -> None:
        for rule_id, counts in other.counts.items():
            for counter, n in counts.items():
                self.add(rule_id, counter, n)
        for rule_id, ms in other.last_evaluated_ms.items():
            if ms > self.last_evaluated_ms.get(rule_id, 0):
                self.last_evaluated_ms[rule_id] = ms

    def __bool__(self) -> bool:
        return bool(self.counts or self.last_evaluated_ms)


_MAX_LUA = """
local current = tonumber(redis.call('HGET', KEYS[1], 'last_evaluated_at') or '0')
if tonumber(ARGV[1]) > current then redis.call('HSET', KEYS[1], 'last_evaluated_at', ARGV[1]) end
return 1
"""


class RuleCounters:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._max = redis.register_script(_MAX_LUA)

    async def add(self, deltas: CounterDeltas) -> None:
        """Apply ``deltas`` in one pipeline (raises ``redis`` errors; callers fail open)."""
        if not deltas:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for rule_id, counts in deltas.counts.items():
                key = counters_key(rule_id)
                for counter, n in counts.items():
                    pipe.hincrby(key, counter, n)
                pipe.expire(key, KEY_TTL_SECONDS)
            for rule_id, ms in deltas.last_evaluated_ms.items():
                await self._max(keys=[counters_key(rule_id)], args=[ms], client=pipe)
            await pipe.execute()

    async def read(self, rule_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """``rule id → {matched, ..., last_evaluated_at}`` (zeros and ``None`` for a rule never seen)."""
        ids = list(rule_ids)
        if not ids:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for rule_id in ids:
                pipe.hgetall(counters_key(rule_id))
            raw: list[Mapping[Any, Any]] = await pipe.execute()
        return {rule_id: counters_json(values) for rule_id, values in zip(ids, raw, strict=True)}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def counters_json(values: Mapping[Any, Any]) -> dict[str, Any]:
    fields = {_text(k): _text(v) for k, v in values.items()}
    out: dict[str, Any] = {name: max(int(fields.get(name, 0)), 0) for name in COUNTERS}
    last = int(fields.get("last_evaluated_at", 0))
    out["last_evaluated_at"] = datetime.fromtimestamp(last / 1000, UTC).isoformat() if last else None
    return out


def zero_counters() -> dict[str, Any]:
    return counters_json({})
