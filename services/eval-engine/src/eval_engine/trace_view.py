"""What an evaluator sees of a trace, built from a ``trulayer.traces`` record (eval rules) or a
stored row (``POST /v1/eval``), so that both paths evaluate the same text.

``input``/``output`` are text: a string as itself, any other JSON value as its JSON text (the
form storage keeps). ``context`` is what a RAG judge checks against: the trace's
``metadata[context_key]`` when present, else the outputs of its retrieval spans. Texts are cut
at :data:`MAX_TEXT_CHARS`: an evaluator's cost stays bounded whatever a trace holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

MAX_TEXT_CHARS = 200_000


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value[:MAX_TEXT_CHARS]
    return orjson.dumps(value).decode()[:MAX_TEXT_CHARS]


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


@dataclass(frozen=True, slots=True)
class TraceView:
    id: str
    project_id: str
    name: str
    model: str
    input: str
    output: str
    latency_ms: float | None
    error: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    tags: list[str] | dict[str, str] = field(default_factory=list)
    retrieved: tuple[str, ...] = ()

    def text(self, which: str) -> str:
        return self.input if which == "input" else self.output

    def metadata_text(self, key: str) -> str | None:
        """``metadata[key]`` as text (lists of strings joined by blank lines); None when absent."""
        value = self.metadata.get(key)
        if value is None:
            return None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return "\n\n".join(value)[:MAX_TEXT_CHARS]
        return as_text(value)

    def context(self, key: str) -> str | None:
        from_metadata = self.metadata_text(key)
        if from_metadata:
            return from_metadata
        return "\n\n".join(self.retrieved)[:MAX_TEXT_CHARS] or None


def from_record(trace: dict[str, Any]) -> TraceView:
    """The view of one trace of a decoded ``trulayer.traces`` record."""
    metadata = trace.get("metadata")
    retrieved = tuple(
        as_text(span.get("output"))
        for span in trace.get("spans") or ()
        if span.get("type") == "retrieval" and span.get("output") is not None
    )
    latency = trace.get("latency_ms")
    return TraceView(
        id=trace["id"],
        project_id=trace["project_id"],
        name=trace.get("name") or "",
        model=trace.get("model") or "",
        input=as_text(trace.get("input")),
        output=as_text(trace.get("output")),
        latency_ms=float(latency) if isinstance(latency, int | float) else None,
        error=trace.get("error"),
        metadata=metadata if isinstance(metadata, dict) else {},
        tags=trace.get("tags") or [],
        retrieved=retrieved,
    )


def from_row(row: dict[str, Any], retrieved: tuple[str, ...]) -> TraceView:
    """The view of a stored trace (``traces`` columns; ``retrieved``: its retrieval spans' outputs)."""
    metadata = _loads(row["metadata"]) if row["metadata"] else {}
    return TraceView(
        id=row["id"],
        project_id=row["project_id"],
        name=row["name"],
        model=row["model"],
        input=row["input"][:MAX_TEXT_CHARS],
        output=row["output"][:MAX_TEXT_CHARS],
        latency_ms=row["latency_ms"],
        error=row["error"],
        metadata=metadata if isinstance(metadata, dict) else {},
        tags=dict(row["tag_map"]) if row["tag_map"] else list(row["tag_list"]),
        retrieved=retrieved,
    )
