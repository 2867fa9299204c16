"""How webhook deliveries are signed, shared by the alerter and the control-engine's test send.

Headers of every delivery::

    X-Trulayer-Timestamp: <unix seconds>
    X-Trulayer-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>

A receiver recomputes the HMAC over the timestamp, a dot and the raw body bytes, compares in
constant time, and rejects timestamps too far from its clock (replays).
"""

from __future__ import annotations

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-Trulayer-Timestamp"
SIGNATURE_HEADER = "X-Trulayer-Signature"
EVENT_HEADER = "X-Trulayer-Event"
DELIVERY_HEADER = "X-Trulayer-Delivery"
SCHEME = "v1"
MIN_SECRET_CHARS = 16


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SCHEME}={mac.hexdigest()}"


def signed_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: sign(secret, ts, body)}


def verify(secret: str, timestamp: str, signature: str, body: bytes, *, tolerance_seconds: int = 300) -> bool:
    """What a receiver does: constant-time compare, and a bounded clock difference."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs(time.time() - ts) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature)
