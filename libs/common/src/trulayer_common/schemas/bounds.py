"""The bounds of what one ingest request may carry, and the checks the types cannot express.

Every number here is documented in ``docs/limits.md``; the gateway refuses values outside them
before anything is produced, so no downstream service ever sees them:

* **Fan-out**: at most :data:`MAX_SPANS_PER_TRACE` spans and :data:`MAX_EVENTS_PER_TRACE`
  events per trace (400 naming the field) and :data:`MAX_ITEMS_PER_REQUEST` spans and events
  over all the traces of a request (413 ``too_many_items``). The monthly quota counts a trace as
  :func:`quota_units`: one unit per started :data:`ROWS_PER_QUOTA_UNIT` rows it stores.
* **Numbers**: finite, non-negative and below absurd (latency ≤ 7 days, cost ≤ 1,000,000,
  tokens ≤ 10⁹ per field); free-form JSON (``input``, ``output``, ``metadata``) holds no
  ``NaN``/``Infinity`` and no integer beyond 64 bits (:func:`refuse_unstorable_numbers`).
* **Times**: every timestamp within [received − :data:`MAX_PAST`, received + :data:`MAX_FUTURE`]
  (:func:`check_times`); naive times are UTC.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import Field

from trulayer_common.errors import ApiError

MAX_SPANS_PER_TRACE = 1_000
MAX_EVENTS_PER_TRACE = 1_000
MAX_ITEMS_PER_REQUEST = 10_000
ROWS_PER_QUOTA_UNIT = 100
MAX_LATENCY_MS = 7 * 24 * 3600 * 1000.0
MAX_COST = 1_000_000.0
MAX_TOKENS = 1_000_000_000
MAX_PAST = timedelta(days=365)
MAX_FUTURE = timedelta(days=1)
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1

Latency = Annotated[float, Field(ge=0, le=MAX_LATENCY_MS, allow_inf_nan=False)]
Cost = Annotated[float, Field(ge=0, le=MAX_COST, allow_inf_nan=False)]
TokenCount = Annotated[int, Field(ge=0, le=MAX_TOKENS)]


def invalid_field(field: str, message: str) -> ApiError:
    """The API's 400 for one field (the shape :func:`trulayer_common.http.validation_error` gives)."""
    return ApiError(
        400,
        f"Invalid field '{field}': {message}",
        "validation_error",
        extra={"details": [{"field": field, "message": message}]},
    )


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _check(value: Any, low: datetime, high: datetime, field: str) -> None:
    if isinstance(value, datetime) and not low <= _utc(value) <= high:
        raise invalid_field(
            field, f"must be within {MAX_PAST.days} days before and {MAX_FUTURE.days} day after the time of receipt"
        )


def check_times(trace: Mapping[str, Any], received_at: datetime, prefix: str = "") -> None:
    """400 naming the first timestamp of the trace (its spans and events included) outside the window."""
    low, high = received_at - MAX_PAST, received_at + MAX_FUTURE
    _check(trace.get("started_at"), low, high, f"{prefix}started_at")
    _check(trace.get("ended_at"), low, high, f"{prefix}ended_at")
    for i, span in enumerate(trace.get("spans") or ()):
        _check(span.get("start_time"), low, high, f"{prefix}spans.{i}.start_time")
        _check(span.get("end_time"), low, high, f"{prefix}spans.{i}.end_time")
    for i, event in enumerate(trace.get("events") or ()):
        _check(event.get("timestamp"), low, high, f"{prefix}events.{i}.timestamp")


def item_count(trace: Mapping[str, Any]) -> int:
    """Spans and events of a trace (the rows it adds besides its own)."""
    return len(trace.get("spans") or ()) + len(trace.get("events") or ())


def check_request_items(traces: Iterable[Mapping[str, Any]]) -> int:
    """The spans and events of a request; 413 ``too_many_items`` above :data:`MAX_ITEMS_PER_REQUEST`."""
    total = sum(item_count(t) for t in traces)
    if total > MAX_ITEMS_PER_REQUEST:
        raise ApiError(
            413,
            f"A request may carry at most {MAX_ITEMS_PER_REQUEST} spans and events in total (got {total})",
            "too_many_items",
            extra={"limit": MAX_ITEMS_PER_REQUEST, "items": total},
        )
    return total


def quota_units(traces: Iterable[Mapping[str, Any]]) -> int:
    """What the traces count against the monthly quota: ``ceil((1 + spans + events) / 100)`` each,
    i.e. 1 for a trace with up to 99 spans and events, 21 for one with 1,000 of each."""
    return sum(-(-(1 + item_count(t)) // ROWS_PER_QUOTA_UNIT) for t in traces)


# A JSON number that may not fit: NaN/Infinity literals, exponents of three digits, 19+ digits.
# Only bodies matching it are walked (the hot path pays one regex scan, nothing more).
_SUSPICIOUS = re.compile(rb"NaN|Infinity|[0-9][eE]\+?[0-9]{3}|[0-9]{19}")


def _unstorable(value: Any, path: str) -> tuple[str, str] | None:
    if isinstance(value, float):
        return None if math.isfinite(value) else (path, "must be a finite number")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if _INT64_MIN <= value <= _UINT64_MAX else (path, "integers must fit in 64 bits")
    if isinstance(value, dict):
        for key, item in value.items():
            found = _unstorable(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _unstorable(item, f"{path}.{i}" if path else str(i))
            if found:
                return found
    return None


_UNPARSED = object()


def refuse_unstorable_numbers(raw: bytes, value: Any = _UNPARSED) -> None:
    """400 naming the field when a JSON body holds a number JSON storage cannot keep faithfully
    (``NaN``, ``Infinity``, ``1e999``, an integer beyond 64 bits), anywhere.

    ``value`` is the body as validated into plain dicts and lists (the ingest path: walked
    without a second parse); without it the raw body is parsed again, by the standard library,
    which keeps big integers and non-finite numbers as they are — only when the cheap scan of
    the bytes found something suspicious."""
    if _SUSPICIOUS.search(raw) is None:
        return
    if value is _UNPARSED:
        try:
            value = json.loads(raw)
        except ValueError:  # the validator accepted it; the standard parser has nothing to add
            return
    found = _unstorable(value, "")
    if found is not None:
        raise invalid_field(*found)
