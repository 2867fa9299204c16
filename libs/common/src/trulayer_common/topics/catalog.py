"""The published JSON Schema of every topic record, generated from the record types.

``make topic-schemas`` (``python -m trulayer_common.topics.catalog docs/topics``) writes one
file per record type into ``docs/topics/``; a unit test fails when a checked-in file is stale.
A record valid against its schema decodes with the topic module's ``decode``. Schemas allow
fields they do not list: fields are added within a schema version (``docs/topics.md``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic import TypeAdapter

from trulayer_common.config.entities import ConfigRecord
from trulayer_common.topics import (
    alerts,
    config,
    control_decisions,
    dlq,
    eval_requests,
    eval_results,
    feedback,
    signals,
    traces,
)

DIALECT = "https://json-schema.org/draft/2020-12/schema"


@dataclass(frozen=True)
class RecordSchema:
    file: str
    topic: str
    schema_version: int
    part: str
    key: str
    source: Any

    def json_schema(self) -> dict[str, Any]:
        generated = TypeAdapter(self.source).json_schema()
        return {
            "$schema": DIALECT,
            "title": f"{self.topic} {self.part}",
            "x-topic": self.topic,
            "x-schema-version": self.schema_version,
            "x-key": self.key,
            **{k: v for k, v in generated.items() if k != "title"},
        }


SCHEMAS: tuple[RecordSchema, ...] = (
    RecordSchema(
        "traces.json", traces.TOPIC, traces.SCHEMA_VERSION, "record value", "first trace id", traces.TraceEnvelope
    ),
    RecordSchema(
        "traces.points-header.json",
        traces.TOPIC,
        traces.SCHEMA_VERSION,
        f"header {traces.POINTS_HEADER}",
        "first trace id",
        traces.Points,
    ),
    RecordSchema(
        "feedback.json", feedback.TOPIC, feedback.SCHEMA_VERSION, "record value", "trace id", feedback.FeedbackEnvelope
    ),
    RecordSchema(
        "eval.requests.json",
        eval_requests.TOPIC,
        eval_requests.SCHEMA_VERSION,
        "record value",
        "evaluation id",
        eval_requests.EvalRequestEnvelope,
    ),
    RecordSchema(
        "eval.results.json",
        eval_results.TOPIC,
        eval_results.SCHEMA_VERSION,
        "record value",
        "first evaluation id",
        eval_results.EvaluationEnvelope,
    ),
    RecordSchema("alerts.json", alerts.TOPIC, alerts.SCHEMA_VERSION, "record value", "tenant id", alerts.AlertEnvelope),
    RecordSchema(
        "control.decisions.json",
        control_decisions.TOPIC,
        control_decisions.SCHEMA_VERSION,
        "record value",
        "first decision id",
        control_decisions.DecisionEnvelope,
    ),
    RecordSchema(
        "config.json", config.TOPIC, config.SCHEMA_VERSION, "record value", "<kind>:<entity id>", ConfigRecord
    ),
    RecordSchema(
        "dlq.headers.json", dlq.TOPIC, dlq.SCHEMA_VERSION, "headers", "the original record's key", dlq.DeadLetterHeaders
    ),
    RecordSchema(
        "signals.json",
        signals.TOPIC,
        signals.SCHEMA_VERSION,
        "record value",
        "tenant|project|model",
        signals.SignalEnvelope,
    ),
)


def rendered() -> dict[str, bytes]:
    """``file name → file content`` of every schema (stable: sorted keys, two-space indent)."""
    return {
        s.file: orjson.dumps(s.json_schema(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
        for s in SCHEMAS
    }


def write(directory: Path) -> list[Path]:
    """Write every schema into ``directory`` and remove schema files no type produces any more."""
    directory.mkdir(parents=True, exist_ok=True)
    files = rendered()
    for stale in directory.glob("*.json"):
        if stale.name not in files:
            stale.unlink()
    written = []
    for name, content in files.items():
        path = directory / name
        path.write_bytes(content)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/topics")):
        print(path)
