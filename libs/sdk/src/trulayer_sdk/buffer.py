"""A bounded buffer that drops its oldest items when full: the SDK's memory bound.

Thread-safe (one lock): the application's threads add, the sender thread takes a batch and
then either settles it (sent or dropped) or, after a failed send, puts it back at the front.
Items taken and not yet settled are *in flight* and still count: whatever happens, the buffer
and the batch being sent hold at most ``capacity`` items together. Each item pushed out is
counted in :attr:`DropOldestBuffer.overflowed`.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class DropOldestBuffer(Generic[T]):
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("max_buffer must be at least 1")
        self.capacity = capacity
        self.overflowed = 0
        self.in_flight = 0
        self._items: deque[T] = deque()
        self.lock = threading.Lock()

    def __len__(self) -> int:
        """Items waiting to be taken (those in flight not included)."""
        return len(self._items)

    @property
    def held(self) -> int:
        """Items waiting plus items in flight: what the memory bound counts."""
        return len(self._items) + self.in_flight

    def add(self, item: T) -> int:
        """Append ``item``; returns how many items it pushed out (0 or 1).

        The oldest waiting item makes room; when every slot is in flight (a batch as large as
        the buffer), ``item`` itself is the one that does not fit."""
        with self.lock:
            if len(self._items) + self.in_flight < self.capacity:
                self._items.append(item)
                return 0
            if self._items:
                self._items.popleft()
                self._items.append(item)
            self.overflowed += 1
            return 1

    def take(self, limit: int, same: Callable[[T, T], bool] | None = None) -> list[T]:
        """Remove and return up to ``limit`` items from the front; with ``same``, only the run of
        items ``same`` as the first one. They are in flight until settled or put back."""
        with self.lock:
            taken: list[T] = []
            while self._items and len(taken) < limit:
                if same is not None and taken and not same(taken[0], self._items[0]):
                    break
                taken.append(self._items.popleft())
            self.in_flight += len(taken)
            return taken

    def settle(self) -> None:
        """What was in flight is done with (sent or dropped): its slots are free again."""
        with self.lock:
            self.in_flight = 0

    def put_back(self, items: Iterable[T]) -> None:
        """Return in-flight ``items`` to the front (they are the oldest). They were counted while
        in flight, so they always fit."""
        with self.lock:
            returned = list(items)
            self.in_flight = max(self.in_flight - len(returned), 0)
            self._items.extendleft(reversed(returned))

    def clear(self) -> int:
        """Drop everything waiting; returns how many items were dropped."""
        with self.lock:
            count = len(self._items)
            self._items.clear()
            return count
