"""The pure transform of the dead-letter writer: a ``trulayer.dlq`` record → its ``dead_letters`` row.

Never raises: a record this writer cannot read must not go back to the topic it reads (it
would come round again). The tenant and project are read from the record's envelope when it is
JSON with those fields (every topic's envelope has them), else ''; the origin and the error
from the headers of :mod:`trulayer_common.topics.dlq`, or what is known without them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from trulayer_common.clickhouse.table_sink import TableRows
from trulayer_common.consumer import Record
from trulayer_common.topics import InvalidRecordError, dlq

MAX_ERROR_CHARS = 2_000


def _origin(record: Record) -> tuple[str, int, int, str]:
    try:
        letter = dlq.decode_headers(record.headers or ())
    except InvalidRecordError as exc:
        # Not produced by our dead-letter queue: keyed by where it sits in the DLQ itself.
        return record.topic, record.partition, record.offset, f"(no dead-letter headers: {exc})"
    return letter.source_topic, letter.source_partition, letter.source_offset, letter.error


def _owner(value: bytes | None) -> tuple[str, str]:
    if not value:
        return "", ""
    try:
        envelope: Any = orjson.loads(value)
    except orjson.JSONDecodeError:
        return "", ""
    if not isinstance(envelope, dict):
        return "", ""
    tenant, project = envelope.get("tenant_id"), envelope.get("project_id")
    return (tenant if isinstance(tenant, str) else ""), (project if isinstance(project, str) else "")


def dead_letter_rows(record: Record) -> TableRows:
    topic, partition, offset, error = _origin(record)
    tenant, project = _owner(record.value)
    at = datetime.fromtimestamp(record.timestamp / 1000, UTC) if record.timestamp else datetime.now(UTC)
    return {
        "dead_letters": [
            {
                "tenant_id": tenant[:256],
                "project_id": project[:256],
                "source_topic": topic[:256],
                "source_partition": max(partition, 0),
                "source_offset": max(offset, 0),
                "error": error[:MAX_ERROR_CHARS],
                "dead_at": at.isoformat(),
            }
        ]
    }
