"""Which offset of a partition may be committed when records finish out of order (pure).

Evaluations of one partition run concurrently and finish in any order, and some wait (a judge
backoff, a trace not stored yet). The committable offset of a partition is its lowest record
still open, or the one after the last record taken when none is: everything before it is
durable, so a restart that resumes there loses nothing.
"""

from __future__ import annotations

from aiokafka import TopicPartition


class OffsetTracker:
    def __init__(self) -> None:
        self._open: dict[TopicPartition, set[int]] = {}
        self._next: dict[TopicPartition, int] = {}

    def take(self, tp: TopicPartition, offset: int) -> None:
        self._open.setdefault(tp, set()).add(offset)
        self._next[tp] = max(self._next.get(tp, 0), offset + 1)

    def done(self, tp: TopicPartition, offset: int) -> None:
        opened = self._open.get(tp)
        if opened is not None:
            opened.discard(offset)

    def committable(self, tp: TopicPartition) -> int | None:
        opened = self._open.get(tp)
        if opened:
            return min(opened)
        return self._next.get(tp)

    def open_count(self) -> int:
        return sum(len(o) for o in self._open.values())

    def forget(self, partitions: set[TopicPartition]) -> None:
        for tp in partitions:
            self._open.pop(tp, None)
            self._next.pop(tp, None)
