"""``trulayer.control.decisions``: policy and routing decisions, taken by the gateway
(``POST /v1/control/decide``, ``source: server``) or reported by SDKs that decided locally from
their cached bundle (``POST /v1/control/decisions``, ``source: sdk``). Stored for
``dataSource: configMetrics`` of the query API.

Payload: ``{"decisions": [ControlDecision, ≤100]}`` (one request's decisions, or a batch the
gateway gathered). Volume follows LLM calls, so a decision is a TypedDict (plain dicts,
validated by pydantic-core on decode). Key: the first decision's id. Consumers are idempotent
on each decision's ``id``.

Added within version 1: ``action`` (what the deciding rule does: ``kill_switch``, ``block``,
``fallback_model``, ``route_pct``, ``retry``, ``escalate``, ``log_only``, ``deny``,
``primary_only``), ``retry_depth``, ``cascade_depth``, ``would_decision`` and
``would_target_model`` (dry runs). Header :data:`ESCALATE_HEADER` (``b"1"``) marks records
holding at least one escalation, so the alerter (which fires ``policy.escalated``) skips the
others without decoding them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NotRequired

import orjson
from pydantic import ConfigDict, Field, with_config
from typing_extensions import TypedDict

from trulayer_common.topics import CONTROL_DECISIONS
from trulayer_common.topics.envelope import Envelope, UtcDatetime, decode_envelope

TOPIC = CONTROL_DECISIONS
SCHEMA_VERSION = 1
MAX_DECISIONS = 100
ESCALATE_HEADER = "x-trulayer-escalate"
_RECORD = ConfigDict(extra="ignore")


@with_config(_RECORD)
class ControlDecision(TypedDict):
    id: Annotated[str, Field(min_length=1)]
    decided_at: UtcDatetime
    source: Literal["server", "sdk"]
    project_id: str
    requested_model: str
    target_model: NotRequired[str | None]
    decision: Literal["allow", "block", "route"]
    rule_id: NotRequired[str | None]
    reason: NotRequired[str]
    dry_run: NotRequired[bool]
    config_type: NotRequired[str | None]
    status: NotRequired[str]
    loadbalance_rule_id: NotRequired[str | None]
    ratelimit_rule_id: NotRequired[str | None]
    budget_rule_id: NotRequired[str | None]
    loadbalance_target_attempt_count: NotRequired[Annotated[int, Field(ge=0)] | None]
    metadata: NotRequired[dict[str, Any]]
    request_id: NotRequired[str | None]
    action: NotRequired[str | None]
    retry_depth: NotRequired[Annotated[int, Field(ge=0)]]
    cascade_depth: NotRequired[Annotated[int, Field(ge=0)]]
    would_decision: NotRequired[str | None]
    would_target_model: NotRequired[str | None]


@with_config(_RECORD)
class DecisionBatch(TypedDict):
    decisions: Annotated[list[ControlDecision], Field(max_length=MAX_DECISIONS)]


DecisionEnvelope = Envelope[DecisionBatch]


def key(decisions: list[ControlDecision]) -> bytes:
    return decisions[0]["id"].encode()


def is_escalation(decision: ControlDecision) -> bool:
    return decision.get("action") == "escalate" and not decision.get("dry_run", False)


def headers(decisions: list[ControlDecision]) -> list[tuple[str, bytes]]:
    """The record's headers: :data:`ESCALATE_HEADER` when any decision escalates."""
    return [(ESCALATE_HEADER, b"1")] if any(is_escalation(d) for d in decisions) else []


def escalates(record_headers: list[tuple[str, bytes]] | None) -> bool:
    return any(name == ESCALATE_HEADER and value == b"1" for name, value in record_headers or ())


def encode(
    decisions: list[ControlDecision],
    *,
    tenant_id: str,
    project_id: str,
    request_id: str,
    received_at: datetime | None = None,
) -> bytes:
    """The record value (orjson; ``decisions`` are typed where they are built)."""
    envelope = {
        "schema_version": SCHEMA_VERSION,
        "tenant_id": tenant_id,
        "project_id": project_id,
        "received_at": received_at or datetime.now(UTC),
        "request_id": request_id,
        "payload": {"decisions": decisions},
    }
    return orjson.dumps(envelope, option=orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC)


def decode(value: bytes | None) -> DecisionEnvelope:
    """The validated envelope; :class:`~trulayer_common.topics.InvalidRecordError` otherwise."""
    return decode_envelope(DecisionEnvelope, value, topic=TOPIC, version=SCHEMA_VERSION)
