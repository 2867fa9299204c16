"""What every topic record shares: the envelope, the decode error, the timestamp text.

A record value is a JSON envelope ``{schema_version, tenant_id, project_id, received_at,
request_id, payload}``: who it belongs to, when the platform took it in, which API request
caused it (empty when none did) and the topic's own payload. ``schema_version`` is per topic.
Within a version changes are additive only (a new optional field); readers ignore fields they
do not know and refuse a version newer than theirs (:class:`InvalidRecordError`), since a new
version means a change they cannot read correctly.

Low-volume topics validate the whole record on decode with pydantic (:class:`Envelope` and
:func:`decode_envelope`); the trace topic checks only its shape (``topics.traces``), because
it carries ~16k traces a second through one process in the local stack.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema

P = TypeVar("P")
E = TypeVar("E", bound="Envelope[Any]")

# RFC 3339 text as written in the record ("2026-03-07T12:34:56.789Z"); kept as text by the
# decoders that do not validate (traces) or that hand values straight to storage (alerts).
Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


# A datetime of a validated record: one sent without an offset is UTC (written with "Z").
UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]


class InvalidRecordError(ValueError):
    """A record that cannot be decoded: not JSON, not this topic's shape, a newer schema version,
    a field of the wrong type. The message says which; consumers dead-letter or skip the record."""


def json_text(value: Any, field: str) -> str:
    """A free-form field of a decoded record as the JSON text a column stores. A value JSON text
    cannot hold (an integer beyond 64 bits) makes the record invalid, not the consumer dead."""
    try:
        return orjson.dumps(value).decode()
    except TypeError as exc:
        raise InvalidRecordError(f"{field} cannot be stored as JSON text: {exc}") from None


class Envelope(BaseModel, Generic[P]):
    """The envelope of a validated topic; ``payload`` is the topic's record type."""

    model_config = ConfigDict(extra="ignore")

    schema_version: int = Field(ge=1, description="the topic's schema version this record follows")
    tenant_id: str = Field(min_length=1)
    project_id: str = Field(description="the record's project; empty when it belongs to no single project")
    received_at: UtcDatetime = Field(description="when the platform took the record in (UTC)")
    request_id: str = Field(default="", description="the API request that caused the record; empty when none did")
    payload: P


def validation_reason(exc: ValidationError, limit: int = 3) -> str:
    """A short, value-free summary of a validation error: ``loc: message; ...``."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False)[:limit]:
        where = ".".join(str(p) for p in error["loc"]) or "record"
        parts.append(f"{where}: {error['msg']}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def decode_envelope(model: type[E], value: bytes | None, *, topic: str, version: int) -> E:
    """``value`` validated as ``model``; :class:`InvalidRecordError` with the reason otherwise."""
    if value is None:
        raise InvalidRecordError(f"{topic}: empty record")
    try:
        envelope = model.model_validate_json(value)
    except ValidationError as exc:
        raise InvalidRecordError(f"{topic}: not a valid record: {validation_reason(exc)}") from None
    if envelope.schema_version > version:
        raise InvalidRecordError(
            f"{topic}: schema_version {envelope.schema_version} is newer than this reader's {version}"
        )
    return envelope
