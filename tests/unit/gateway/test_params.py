from __future__ import annotations

from datetime import UTC, datetime

import pytest
from multidict import MultiDict

from gateway.params import get_bool, get_float, get_int, parse_time
from gateway.traces import decode_cursor, encode_cursor
from trulayer_common.errors import ApiError


def test_parse_time_accepts_iso_and_unix():
    expected = datetime(2026, 1, 3, tzinfo=UTC)
    assert parse_time("2026-01-03T00:00:00Z") == expected
    assert parse_time("2026-01-03") == expected
    assert parse_time("1767398400") == expected
    assert parse_time("1767398400000") == expected


def test_cursor_round_trip_and_garbage():
    started = datetime(2026, 1, 3, 4, 5, 6, 7000, tzinfo=UTC)
    assert decode_cursor(encode_cursor(started, "id-1")) == (started, "id-1")
    with pytest.raises(ApiError) as info:
        decode_cursor("%%%")
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("fn", "value"),
    [(get_bool, "maybe"), (get_float, "inf"), (get_float, "-2"), (get_int, "2.5"), (get_int, "1000")],
)
def test_bad_values_name_the_parameter(fn, value):
    query = MultiDict({"p": value})
    with pytest.raises(ApiError) as info:
        fn(query, "p") if fn is not get_int else fn(query, "p", 0, 200)
    assert info.value.status == 400
    assert info.value.extra["parameter"] == "p"
