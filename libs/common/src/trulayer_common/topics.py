"""The one list of Kafka topics, with the partition counts and configs they are created with."""

from __future__ import annotations

from dataclasses import dataclass, field

TRACES = "trulayer.traces"
FEEDBACK = "trulayer.feedback"
EVAL_REQUESTS = "trulayer.eval.requests"
EVAL_RESULTS = "trulayer.eval.results"
ALERTS = "trulayer.alerts"
CONTROL_DECISIONS = "trulayer.control.decisions"
CONFIG = "trulayer.config"
DLQ = "trulayer.dlq"


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
)
