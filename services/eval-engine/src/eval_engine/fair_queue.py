"""Due evaluations queued per tenant and handed out round-robin under two limits (pure).

At most ``tenant_limit`` evaluations of one tenant run at once, and ``total_limit`` overall: a
tenant whose judge is slow fills its own slots, never the others'. Tenants with queued work
take turns, so a tenant with thousands queued does not delay one with a single evaluation.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

J = TypeVar("J")


class FairQueue(Generic[J]):
    def __init__(self, total_limit: int, tenant_limit: int) -> None:
        self.total_limit = total_limit
        self.tenant_limit = tenant_limit
        self._queues: dict[str, deque[J]] = {}
        self._turns: deque[str] = deque()
        self._running: dict[str, int] = {}
        self.running_total = 0

    def queued(self, tenant: str) -> int:
        queue = self._queues.get(tenant)
        return len(queue) if queue else 0

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def push(self, tenant: str, job: J) -> None:
        queue = self._queues.get(tenant)
        if queue is None:
            queue = self._queues[tenant] = deque()
            self._turns.append(tenant)
        queue.append(job)

    def take(self) -> Iterator[tuple[str, J]]:
        """The jobs that may start now, each counted as running until :meth:`finished`."""
        while self.running_total < self.total_limit and self._turns:
            started = False
            for _ in range(len(self._turns)):
                if self.running_total >= self.total_limit:
                    return
                tenant = self._turns.popleft()
                queue = self._queues.get(tenant)
                if not queue:
                    self._queues.pop(tenant, None)
                    continue
                if self._running.get(tenant, 0) >= self.tenant_limit:
                    self._turns.append(tenant)
                    continue
                job = queue.popleft()
                self._running[tenant] = self._running.get(tenant, 0) + 1
                self.running_total += 1
                started = True
                if queue:
                    self._turns.append(tenant)
                else:
                    del self._queues[tenant]
                yield tenant, job
            if not started:
                return

    def finished(self, tenant: str) -> None:
        left = self._running.get(tenant, 0) - 1
        if left > 0:
            self._running[tenant] = left
        else:
            self._running.pop(tenant, None)
        self.running_total -= 1

    def drop(self, keep: Callable[[J], bool]) -> list[J]:
        """Remove (and return) the queued jobs ``keep`` refuses (their partitions were revoked)."""
        dropped: list[J] = []
        for tenant in list(self._queues):
            queue = self._queues[tenant]
            kept = deque(j for j in queue if keep(j))
            dropped.extend(j for j in queue if not keep(j))
            if kept:
                self._queues[tenant] = kept
            else:
                del self._queues[tenant]
        self._turns = deque(t for t in self._turns if t in self._queues)
        return dropped
