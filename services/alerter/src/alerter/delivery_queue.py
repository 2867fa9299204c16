"""Fair scheduling of webhook deliveries: one bounded FIFO per tenant, served round-robin.

A tenant whose rules fire in a storm fills only its own queue: past ``per_tenant`` waiting
deliveries its new ones are refused (the caller records them as dropped), and the workers take
one delivery per tenant in turn, so another tenant's single alert waits behind at most one
delivery of each busier tenant, never behind thousands. At most ``tenant_slots`` deliveries of
one tenant are in flight at once (a slow receiver holds only its own tenant's slots), and
``total`` bounds everything waiting. No I/O here: the dispatcher's workers do the sending.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Generic, TypeVar

T = TypeVar("T")


class FairQueue(Generic[T]):
    def __init__(self, *, per_tenant: int, total: int, tenant_slots: int) -> None:
        self._per_tenant = per_tenant
        self._total = total
        self._slots = tenant_slots
        # Tenants with waiting items, in the order they are served next (round robin).
        self._queues: OrderedDict[str, deque[T]] = OrderedDict()
        self._in_flight: dict[str, int] = {}
        self._waiting = 0

    @property
    def waiting(self) -> int:
        return self._waiting

    def in_flight(self, tenant: str) -> int:
        return self._in_flight.get(tenant, 0)

    def waiting_of(self, tenant: str) -> int:
        queue = self._queues.get(tenant)
        return len(queue) if queue else 0

    def put(self, tenant: str, item: T) -> bool:
        """Queue ``item`` for ``tenant``; ``False`` (not queued) when its queue or the total is full."""
        if self._waiting >= self._total:
            return False
        queue = self._queues.get(tenant)
        if queue is None:
            queue = self._queues[tenant] = deque()
        if len(queue) >= self._per_tenant:
            return False
        queue.append(item)
        self._waiting += 1
        return True

    def take(self) -> tuple[str, T] | None:
        """The next item of the next tenant in turn that has a free slot (and occupies the slot);
        ``None`` when nothing can start now. Call :meth:`done` when it finished."""
        for tenant in list(self._queues):
            if self._in_flight.get(tenant, 0) >= self._slots:
                continue
            queue = self._queues.pop(tenant)
            item = queue.popleft()
            if queue:
                self._queues[tenant] = queue  # back of the line: the others go first
            self._waiting -= 1
            self._in_flight[tenant] = self._in_flight.get(tenant, 0) + 1
            return tenant, item
        return None

    def done(self, tenant: str) -> None:
        left = self._in_flight.get(tenant, 0) - 1
        if left > 0:
            self._in_flight[tenant] = left
        else:
            self._in_flight.pop(tenant, None)
