"""Cursor pagination of configuration lists: ``{items, next_cursor, has_more}``.

Lists are ordered by ``(priority, id)``; a cursor is the position of the last item returned
(opaque to clients: URL-safe base64 of ``[priority, id]``), so pages stay consistent while
items are added or removed elsewhere in the list. Bad ``limit``/``cursor`` → 400 naming it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import orjson
from multidict import MultiMapping

from trulayer_common.errors import ApiError

T = TypeVar("T")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
Position = tuple[int, str]


def bad_param(name: str, why: str) -> ApiError:
    return ApiError(400, f"Invalid query parameter '{name}': {why}", "invalid_parameter", extra={"parameter": name})


def _limit(query: MultiMapping[str]) -> int:
    raw = query.get("limit")
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise bad_param("limit", f"expected an integer 1..{MAX_LIMIT}")
    return int(raw)


def encode_cursor(position: Position) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(position))).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    try:
        value = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise bad_param("cursor", "not a cursor this API returned") from None
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], int) and isinstance(value[1], str)):
        raise bad_param("cursor", "not a cursor this API returned")
    return value[0], value[1]


def page(
    items: Sequence[T], position: Callable[[T], Position], render: Callable[[T], Any], query: MultiMapping[str]
) -> dict[str, Any]:
    """One page of ``items`` (any order) by ``position``, rendered, with the next cursor."""
    limit = _limit(query)
    ordered = sorted(items, key=position)
    cursor = query.get("cursor")
    if cursor:
        after = decode_cursor(cursor)
        ordered = [item for item in ordered if position(item) > after]
    chunk = ordered[:limit]
    has_more = len(ordered) > limit
    return {
        "items": [render(item) for item in chunk],
        "next_cursor": encode_cursor(position(chunk[-1])) if has_more else None,
        "has_more": has_more,
    }
