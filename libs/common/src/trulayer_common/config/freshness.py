"""How current a follower of the config log is, so that a replica that lost the broker knows it.

A revocation reaches authentication only through the log: a gateway whose reader stopped
receiving would honour a revoked key forever. :class:`Freshness` answers "the state includes
everything the broker had as of *T*": each fetch answer tells the partition's high watermark
at the time it arrived; once the applied position reaches that watermark, the state is current
as of that answer. No answers (broker gone, network cut) → *T* stops moving and the staleness
grows, whatever else happens. Pure bookkeeping: the reader feeds it, services read
:meth:`staleness`.
"""

from __future__ import annotations

from collections.abc import Hashable


class Freshness:
    def __init__(self, started_at: float) -> None:
        self._started_at = started_at
        self._current: dict[Hashable, float] = {}  # partition → current as of (epoch seconds)
        self._target: dict[Hashable, tuple[int, float]] = {}  # partition → (watermark, answered at)

    def observe(self, partition: Hashable, position: int, highwater: int | None, answered_at: float | None) -> None:
        """After applying what was fetched: the partition's position, and the high watermark and
        arrival time of the latest fetch answer (``None`` before the first one)."""
        target = self._target.get(partition)
        if target is not None and position >= target[0]:
            self._current[partition] = max(self._current.get(partition, 0.0), target[1])
            target = None
        if highwater is None or answered_at is None:
            return
        if position >= highwater:
            self._current[partition] = max(self._current.get(partition, 0.0), answered_at)
        elif target is None:
            self._target[partition] = (highwater, answered_at)
            return
        if target is None:
            self._target.pop(partition, None)

    def current_as_of(self) -> float:
        """The oldest "current as of" time over the partitions (the start time before any)."""
        return min(self._current.values()) if self._current else self._started_at

    def staleness(self, now: float) -> float:
        return max(now - self.current_as_of(), 0.0)
