"""``trulayer.signals`` (compacted): the live window summary of one tenant × project × model,
published by the alerter (``alerter.signals``) for the control plane: ``/v1/control/decide``
and the SDKs route on error rate, latency, cost, eval scores and anomalies without querying
ClickHouse. The gateway materialises the topic (``gateway.live_signals``).

Payload: one :class:`WindowSignal`. Key: ``tenant|project|model`` (:func:`key`), so compaction
keeps the latest summary of each; a tombstone (null value) removes a scope that went quiet.
Consumers read the topic from the start and keep the newest ``as_of`` per key.

The top-level fields summarise one window (``window_secs``, 300 s by default). Added within
version 1: ``windows``, the same summary for every window length the tenant's policies and
routes read (the top-level one included), and ``anomalies``, the anomaly types detected
recently in the project with the end of their detection window. A version-1 record without
them reads as a single window and no anomalies.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from trulayer_common.topics import SIGNALS
from trulayer_common.topics.envelope import Envelope, UtcDatetime, decode_envelope

TOPIC = SIGNALS
SCHEMA_VERSION = 1


class WindowSummary(BaseModel):
    """One window's statistics (the fields of :class:`WindowSignal` of the same names)."""

    model_config = ConfigDict(extra="ignore")

    window_secs: int = Field(gt=0)
    count: int = Field(ge=0)
    error_rate: float | None = Field(default=None, ge=0, le=1)
    latency_p50: float | None = Field(default=None, ge=0)
    latency_p95: float | None = Field(default=None, ge=0)
    latency_p99: float | None = Field(default=None, ge=0)
    cost_per_call: float | None = Field(default=None, ge=0)
    total_cost: float | None = Field(default=None, ge=0)
    eval_scores: dict[str, float] = Field(default_factory=dict)


class WindowSignal(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tenant_id: str = Field(min_length=1)
    project_id: str = Field(min_length=1)
    model: str = Field(description="the model of the window; empty for the project's traces of every model")
    window_secs: int = Field(gt=0)
    as_of: UtcDatetime = Field(description="the window's end (event time)")
    count: int = Field(ge=0, description="traces in the window")
    error_rate: float | None = Field(default=None, ge=0, le=1, description="share of traces with an error")
    latency_p50: float | None = Field(default=None, ge=0, description="milliseconds")
    latency_p95: float | None = Field(default=None, ge=0)
    latency_p99: float | None = Field(default=None, ge=0)
    cost_per_call: float | None = Field(default=None, ge=0)
    total_cost: float | None = Field(default=None, ge=0)
    eval_scores: dict[str, float] = Field(default_factory=dict, description="metric name → average score (0..1)")
    windows: list[WindowSummary] = Field(
        default_factory=list, description="every window length published (the top-level one included)"
    )
    anomalies: dict[str, UtcDatetime] = Field(
        default_factory=dict, description="anomaly type → end of the window it was detected in (the project's)"
    )

    def summaries(self) -> list[WindowSummary]:
        """Every window of the record (a record without ``windows`` has its top-level one)."""
        if self.windows:
            return self.windows
        top = self.model_dump(include=set(WindowSummary.model_fields))
        return [WindowSummary.model_validate(top)]


SignalEnvelope = Envelope[WindowSignal]


def key(signal: WindowSignal) -> bytes:
    return f"{signal.tenant_id}|{signal.project_id}|{signal.model}".encode()


def encode(signal: WindowSignal, *, received_at: datetime | None = None) -> bytes:
    envelope = SignalEnvelope(
        schema_version=SCHEMA_VERSION,
        tenant_id=signal.tenant_id,
        project_id=signal.project_id,
        received_at=received_at or datetime.now(UTC),
        payload=signal,
    )
    return envelope.model_dump_json().encode()


def tombstone_key(tenant_id: str, project_id: str, model: str) -> bytes:
    return f"{tenant_id}|{project_id}|{model}".encode()


def decode(value: bytes | None) -> SignalEnvelope:
    """The validated envelope; :class:`~trulayer_common.topics.InvalidRecordError` otherwise (a
    tombstone, value None, is the caller's to handle before decoding)."""
    return decode_envelope(SignalEnvelope, value, topic=TOPIC, version=SCHEMA_VERSION)
