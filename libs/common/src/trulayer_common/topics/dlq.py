"""``trulayer.dlq``: records a consumer could not use, unchanged, with why and where from.

The value and key are the original record's, byte for byte, so a replay only produces the value
back to its source topic. The headers (:func:`encode_headers` / :func:`decode_headers`) say why
(``error``) and where it came from (``source_topic``, ``source_partition``, ``source_offset``);
``(source_topic, source_partition, source_offset)`` identifies a dead letter, so a replay or an
audit is idempotent on it. One partition: dead letters are rare (a flood stops the consumer).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field
from typing_extensions import TypedDict

from trulayer_common.topics import DLQ
from trulayer_common.topics.envelope import InvalidRecordError

TOPIC = DLQ
SCHEMA_VERSION = 1
ERROR = "error"
SOURCE_TOPIC = "source_topic"
SOURCE_PARTITION = "source_partition"
SOURCE_OFFSET = "source_offset"
MAX_ERROR_CHARS = 4000


_Number = Annotated[str, Field(pattern=r"^[0-9]+$")]


class DeadLetterHeaders(TypedDict):
    """The headers of a dead letter, as UTF-8 text (the published schema of this topic)."""

    error: Annotated[str, Field(max_length=MAX_ERROR_CHARS, description="why the record could not be used")]
    source_topic: str
    source_partition: _Number
    source_offset: _Number


@dataclass(frozen=True)
class DeadLetter:
    """What the headers of a dead letter say."""

    error: str
    source_topic: str
    source_partition: int
    source_offset: int


def encode_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    return [
        (ERROR, letter.error[:MAX_ERROR_CHARS].encode()),
        (SOURCE_TOPIC, letter.source_topic.encode()),
        (SOURCE_PARTITION, str(letter.source_partition).encode()),
        (SOURCE_OFFSET, str(letter.source_offset).encode()),
    ]


def decode_headers(headers: Sequence[tuple[str, bytes]]) -> DeadLetter:
    """The dead letter's origin and error; :class:`InvalidRecordError` when a header is missing."""
    found = dict(headers)
    try:
        return DeadLetter(
            error=found[ERROR].decode(errors="replace"),
            source_topic=found[SOURCE_TOPIC].decode(),
            source_partition=int(found[SOURCE_PARTITION]),
            source_offset=int(found[SOURCE_OFFSET]),
        )
    except KeyError as exc:
        raise InvalidRecordError(f"{TOPIC}: header {exc.args[0]!r} missing") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRecordError(f"{TOPIC}: malformed header: {exc}") from None
