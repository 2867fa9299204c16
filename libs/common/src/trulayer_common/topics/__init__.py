"""The one list of Kafka topics, with the partition counts and configs they are created with.

Each topic has one module here that owns its record: the type with its ``schema_version``, the
key, the headers and one encode/decode pair (``trulayer_common.topics.traces``, ``.feedback``,
``.eval_requests``, ``.eval_results``, ``.alerts``, ``.control_decisions``, ``.config``,
``.dlq``, ``.signals``). Producers and consumers go through those modules; nobody parses a
record by hand. A record that cannot be decoded raises :class:`InvalidRecordError`.
``docs/topics.md`` describes every topic for the teams that consume them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trulayer_common.topics.envelope import InvalidRecordError

TRACES = "trulayer.traces"
FEEDBACK = "trulayer.feedback"
EVAL_REQUESTS = "trulayer.eval.requests"
EVAL_RESULTS = "trulayer.eval.results"
ALERTS = "trulayer.alerts"
CONTROL_DECISIONS = "trulayer.control.decisions"
CONFIG = "trulayer.config"
DLQ = "trulayer.dlq"
SIGNALS = "trulayer.signals"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


_RETAIN_7D = {"retention.ms": str(7 * 24 * 3600 * 1000)}

TOPICS: tuple[TopicSpec, ...] = (
    # Traces carry the bulk: enough partitions for a few ingest-worker replicas.
    TopicSpec(TRACES, 8, _RETAIN_7D),
    TopicSpec(FEEDBACK, 2, _RETAIN_7D),
    TopicSpec(EVAL_REQUESTS, 4, _RETAIN_7D),
    TopicSpec(EVAL_RESULTS, 4, _RETAIN_7D),
    TopicSpec(ALERTS, 2, _RETAIN_7D),
    TopicSpec(CONTROL_DECISIONS, 4, _RETAIN_7D),
    # Configuration is a compacted log read from the start by every service: keep it small,
    # one partition so that every reader sees changes in the order the control-engine wrote them.
    TopicSpec(
        CONFIG,
        1,
        {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000", "segment.ms": "3600000"},
    ),
    TopicSpec(DLQ, 1, {"retention.ms": str(30 * 24 * 3600 * 1000)}),
    # The latest window summary per tenant × project × model: compacted, read from the start by
    # whoever decides (the gateway), so small segments keep a restart's read near the live state.
    TopicSpec(
        SIGNALS,
        4,
        {"cleanup.policy": "compact", "min.compaction.lag.ms": "0", "segment.ms": "600000"},
    ),
)

__all__ = [
    "ALERTS",
    "CONFIG",
    "CONTROL_DECISIONS",
    "DLQ",
    "EVAL_REQUESTS",
    "EVAL_RESULTS",
    "FEEDBACK",
    "SIGNALS",
    "TOPICS",
    "TRACES",
    "InvalidRecordError",
    "TopicSpec",
]
