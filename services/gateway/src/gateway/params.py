"""Parsing of query-string parameters into typed values; bad values → 400 naming the parameter."""

from __future__ import annotations

import base64
import math
from datetime import UTC, datetime

import orjson
from multidict import MultiMapping

from trulayer_common.errors import ApiError

# Times a filter or cursor may name: the engine's DateTime64 cannot hold every Python datetime
# (year 1 is refused by it), and nothing is stored outside this range anyway.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def bad_param(name: str, why: str) -> ApiError:
    return ApiError(400, f"Invalid query parameter '{name}': {why}", "invalid_parameter", extra={"parameter": name})


def get_str(query: MultiMapping[str], name: str, max_len: int = 256) -> str | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    if len(value) > max_len:
        raise bad_param(name, f"longer than {max_len} characters")
    return value


def get_bool(query: MultiMapping[str], name: str) -> bool | None:
    value = get_str(query, name)
    if value is None:
        return None
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise bad_param(name, "expected true or false")


def get_float(query: MultiMapping[str], name: str, minimum: float = 0.0) -> float | None:
    value = get_str(query, name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise bad_param(name, "expected a number") from None
    if not math.isfinite(number) or number < minimum:
        raise bad_param(name, f"expected a finite number ≥ {minimum:g}")
    return number


def get_int(query: MultiMapping[str], name: str, minimum: int, maximum: int) -> int | None:
    value = get_str(query, name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise bad_param(name, "expected an integer") from None
    if not minimum <= number <= maximum:
        raise bad_param(name, f"expected an integer from {minimum} to {maximum}")
    return number


def parse_time(value: str) -> datetime:
    """ISO 8601 (naive means UTC) or unix seconds / milliseconds."""
    try:
        number = float(value)
    except ValueError:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if number > 1e11:  # milliseconds
        number /= 1000.0
    return datetime.fromtimestamp(number, UTC)


def in_time_range(value: datetime) -> bool:
    return EARLIEST <= value <= LATEST


def get_time(query: MultiMapping[str], name: str) -> datetime | None:
    value = get_str(query, name)
    if value is None:
        return None
    try:
        parsed = parse_time(value)
    except (ValueError, OverflowError, OSError):
        raise bad_param(name, "expected an ISO 8601 timestamp or unix seconds") from None
    if not in_time_range(parsed):
        raise bad_param(name, f"expected a time from {EARLIEST.date()} to {LATEST.date()}")
    return parsed


def iso(value: datetime | None) -> str | None:
    """Engine datetimes come back naive in UTC; answer ISO 8601 with an explicit offset."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat().replace("+00:00", "Z")


def encode_cursor(at: datetime, item_id: str) -> str:
    """An opaque cursor for keyset pagination on ``(time, id)``, newest first."""
    raw = orjson.dumps([iso(at), item_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw_at, item_id = orjson.loads(base64.urlsafe_b64decode(padded))
        at = datetime.fromisoformat(raw_at.replace("Z", "+00:00"))
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
    except Exception:
        raise bad_param("cursor", "not a cursor returned by this API") from None
    if not in_time_range(at) or not isinstance(item_id, str | int):
        raise bad_param("cursor", "not a cursor returned by this API")
    return at, str(item_id)
