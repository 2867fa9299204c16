"""Which failed inserts are the record's fault (dead-lettered) and which the engine's (retried)."""

from __future__ import annotations

import pytest

from trulayer_common.clickhouse.refusals import error_names, is_data_error

PARSE = (
    "Code: 72. DB::Exception: Code: 72. DB::Exception: Cannot read floating point value: while "
    "executing 'FUNCTION ...' (CANNOT_PARSE_NUMBER) (version 26.9.2.1). (CANNOT_PARSE_NUMBER)"
)
READ_ONLY_DISK = (
    "Code: 1001. DB::Exception: std::__1::filesystem::filesystem_error: filesystem error: in "
    'create_directories: Operation not permitted ["/data/store/5ba/tmp_insert_202611_28_28_1"]. (STD_EXCEPTION)'
)


@pytest.mark.parametrize(
    "message",
    [
        PARSE,
        "Code: 117. DB::Exception: Unexpected end of file. (INCORRECT_DATA) (version 26.9.2.1). (INCORRECT_DATA)",
        "Code: 41. DB::Exception: Cannot read DateTime (CANNOT_PARSE_DATETIME)",
        "Code: 27. DB::Exception: Cannot parse input: expected '{' (CANNOT_PARSE_INPUT_ASSERTION_FAILED)",
    ],
)
def test_data_errors_are_the_records_fault(message: str):
    assert is_data_error(message)
    assert is_data_error(RuntimeError(message))


@pytest.mark.parametrize(
    "message",
    [
        READ_ONLY_DISK,
        "Code: 242. DB::Exception: Table is in readonly mode (TABLE_IS_READ_ONLY)",
        "Code: 243. DB::Exception: Cannot reserve 1.00 MiB, not enough space. (NOT_ENOUGH_SPACE)",
        "Code: 241. DB::Exception: Memory limit (total) exceeded (MEMORY_LIMIT_EXCEEDED)",
        "Code: 252. DB::Exception: Too many parts (300). (TOO_MANY_PARTS)",
        "Connection refused",
        "",
    ],
)
def test_engine_errors_are_not(message: str):
    assert not is_data_error(message)


def test_the_last_name_decides():
    assert error_names(PARSE) == ["CANNOT_PARSE_NUMBER", "CANNOT_PARSE_NUMBER"]
    assert not is_data_error("Code: 72 (CANNOT_PARSE_NUMBER) while writing: (NOT_ENOUGH_SPACE)")
