"""A bounded buffer that drops its oldest items when full: the SDK's memory bound.

Thread-safe (one lock): the application's threads add, the sender thread takes and, after a
failed send, puts a batch back at the front. Whatever happens the buffer holds at most
``capacity`` items; each item pushed out is counted in :attr:`DropOldestBuffer.overflowed`.
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
        self._items: deque[T] = deque()
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: T) -> int:
        """Append ``item``; returns how many older items it pushed out (0 or 1)."""
        with self.lock:
            self._items.append(item)
            if len(self._items) <= self.capacity:
                return 0
            self._items.popleft()
            self.overflowed += 1
            return 1

    def take(self, limit: int, same: Callable[[T, T], bool] | None = None) -> list[T]:
        """Remove and return up to ``limit`` items from the front; with ``same``, only the run of
        items ``same`` as the first one."""
        with self.lock:
            taken: list[T] = []
            while self._items and len(taken) < limit:
                if same is not None and taken and not same(taken[0], self._items[0]):
                    break
                taken.append(self._items.popleft())
            return taken

    def put_back(self, items: Iterable[T]) -> int:
        """Return ``items`` to the front (they are the oldest); returns how many items had to be
        dropped to stay within capacity (the oldest, so these first)."""
        with self.lock:
            self._items.extendleft(reversed(list(items)))
            dropped = 0
            while len(self._items) > self.capacity:
                self._items.popleft()
                dropped += 1
            self.overflowed += dropped
            return dropped

    def clear(self) -> int:
        """Drop everything; returns how many items were dropped."""
        with self.lock:
            count = len(self._items)
            self._items.clear()
            return count
