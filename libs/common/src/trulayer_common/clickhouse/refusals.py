"""Whose fault is a failed insert: the record's, or the engine's?

Used by :class:`~trulayer_common.clickhouse.table_sink.TableSink` (``refuses_record``) for the
consumer loops. Only a record whose *data* ClickHouse cannot take (a value it cannot parse or
convert) may go to the dead-letter topic: retrying it would stall its partition forever.
Everything else (a full or read-only disk, a table that cannot create parts, memory, too many
parts, a server that does not answer) is the engine's trouble: the batch is retried until the
engine takes it, and nothing is dead-lettered. An earlier rule ("the engine answers a ping, so
the records are at fault") sent whole batches to the dead-letter topic while a table refused
inserts (found by ``make chaos``: ClickHouse refusing inserts for 6 s lost 7,000 acknowledged
traces).

The error names are the ones ClickHouse puts in parentheses at the end of its messages
(``... (CANNOT_PARSE_NUMBER)``).
"""

from __future__ import annotations

import re

_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)")
DATA_ERROR_PREFIXES = ("CANNOT_PARSE_", "CANNOT_READ_", "CANNOT_CONVERT_")
DATA_ERRORS = frozenset(
    {
        "INCORRECT_DATA",
        "TYPE_MISMATCH",
        "ATTEMPT_TO_READ_AFTER_EOF",
        "ARGUMENT_OUT_OF_BOUND",
        "TOO_LARGE_ARRAY_SIZE",
        "TOO_LARGE_STRING_SIZE",
        "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
        "CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN",
        "DECIMAL_OVERFLOW",
        "INCORRECT_NUMBER_OF_COLUMNS",
        "SIZES_OF_ARRAYS_DONT_MATCH",
        "ILLEGAL_TYPE_OF_ARGUMENT",
        "BAD_ARGUMENTS",
    }
)


def error_names(error: BaseException | str) -> list[str]:
    """The ClickHouse error names in a message, in order (empty when it names none)."""
    return _NAME.findall(str(error))


def is_data_error(error: BaseException | str) -> bool:
    """True when ClickHouse refused the data itself; False for anything about the engine."""
    names = error_names(error)
    if not names:
        return False
    name = names[-1]
    return name in DATA_ERRORS or name.startswith(DATA_ERROR_PREFIXES)
