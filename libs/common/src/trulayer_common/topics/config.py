"""``trulayer.config`` (compacted, one partition): the platform's configuration as an event log.

Unlike the other topics a record is not an envelope: it is the *full current state* of one
entity (:class:`~trulayer_common.config.entities.ConfigRecord`: ``{schema_version, entity,
actor, at}``, the entity tagged by ``kind``), keyed ``<kind>:<id>`` so that compaction keeps
exactly the latest state of each. A deletion is a record with ``deleted_at`` (or a revoked
key): readers drop it; a tombstone (null value) forgets the key. The control-engine is the only
writer; every service reads the topic from the start, without a consumer group.

Version 1 records written before ``schema_version`` existed read as version 1.
"""

from __future__ import annotations

from pydantic import ValidationError

from trulayer_common.config.entities import ConfigRecord
from trulayer_common.topics import CONFIG
from trulayer_common.topics.envelope import InvalidRecordError, validation_reason

TOPIC = CONFIG
SCHEMA_VERSION = 1


def key(record: ConfigRecord) -> bytes:
    return record.key.encode()


def encode(record: ConfigRecord) -> bytes:
    return record.model_dump_json().encode()


def decode(value: bytes) -> ConfigRecord:
    """The validated record; :class:`InvalidRecordError` for an unknown entity kind, a field of
    the wrong type or a newer schema version (a record from a newer control-engine)."""
    try:
        record = ConfigRecord.model_validate_json(value)
    except ValidationError as exc:
        raise InvalidRecordError(f"{TOPIC}: not a valid record: {validation_reason(exc)}") from None
    if record.schema_version > SCHEMA_VERSION:
        raise InvalidRecordError(f"{TOPIC}: schema_version {record.schema_version} is newer than {SCHEMA_VERSION}")
    return record


def decode_key(key: bytes) -> str:
    """The entity key ``<kind>:<id>`` of a record (what a tombstone carries)."""
    try:
        text = key.decode()
    except UnicodeDecodeError:
        raise InvalidRecordError(f"{TOPIC}: key is not UTF-8") from None
    if ":" not in text:
        raise InvalidRecordError(f"{TOPIC}: key {text!r} is not <kind>:<id>")
    return text
