"""Exponential backoff with full jitter (AWS architecture blog's "full jitter"): the n-th
consecutive failure waits a uniform random time in [0, min(cap, base × 2ⁿ)], at least what the
server asked for with ``Retry-After``. Many SDK instances recovering at once spread out."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base: float = 0.5
    cap: float = 30.0
    failures: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self, retry_after: float | None = None) -> float:
        """Seconds to wait after one more failure."""
        ceiling = min(self.cap, self.base * 2**self.failures)
        self.failures = min(self.failures + 1, 62)
        delay = self.rng.uniform(0, ceiling)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.cap))
        return delay

    def reset(self) -> None:
        self.failures = 0
