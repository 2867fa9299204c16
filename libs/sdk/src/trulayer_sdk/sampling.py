"""Deterministic sampling: whether a trace is kept depends only on its id and the rate.

The same trace id gives the same answer in every process (a trace continued elsewhere, a
replayed one), and a rate keeps that fraction of random ids: the first 8 bytes of the id's
BLAKE2b digest, read as a fraction of 2⁶⁴, are compared with the rate.
"""

from __future__ import annotations

import hashlib


def sampled(trace_id: str, rate: float) -> bool:
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    digest = hashlib.blake2b(trace_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < rate * 2**64
