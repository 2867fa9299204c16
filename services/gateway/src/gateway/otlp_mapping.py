"""OpenTelemetry spans → parts of our traces. Pure: no I/O, no clock (the time of receipt is given).

Each export is cut into **parts**: the spans of one trace (and one project) that arrived in
this export, as a ``TraceRequest``-shaped dict with ``spans``, ``events`` and the marker
``otlp: {"root": bool}``. A trace whose spans arrive over several exports is several parts; the
ingest-worker stores each part's spans and events as they come and derives the trace row from
every span stored for the trace (``docs/otlp.md``), so a root arriving last still yields one
trace. The part's own trace-level fields (name, times, model, error, tokens) describe the part
only: they feed the alerter's summary of root parts and the derivation's fall-backs.

Mapping (old and new GenAI semantic-convention names are both read):

* span → span: ids as hex, parent link kept, ``start_time``/``end_time``, ``latency_ms``;
  ``type`` from ``trulayer.span.type`` or ``gen_ai.operation.name`` (``execute_tool`` → tool;
  chat, text_completion, generate_content, embeddings → llm; retrieval → retrieval), else llm
  when a GenAI model is named, else other.
* model: ``gen_ai.response.model`` else ``gen_ai.request.model`` (OpenInference ``llm.model_name``).
* tokens: ``gen_ai.usage.input_tokens`` | ``gen_ai.usage.prompt_tokens`` and
  ``gen_ai.usage.output_tokens`` | ``gen_ai.usage.completion_tokens`` (OpenInference
  ``llm.token_count.prompt|completion``); cost: ``gen_ai.usage.cost`` or ``trulayer.cost``.
* input/output: ``gen_ai.input.messages`` / ``gen_ai.output.messages`` (JSON text or structured),
  else the older ``gen_ai.prompt`` / ``gen_ai.completion`` (attributes, or the attributes of the
  ``gen_ai.content.prompt`` / ``gen_ai.content.completion`` span events, which are consumed),
  else indexed ``gen_ai.prompt.N.role|content`` / ``gen_ai.completion.N.*``, else OpenInference
  ``input.value`` / ``output.value``.
* error: status ERROR (its message), or ``error.type`` (with the message when both), or the
  ``exception`` event's type and message; status OK means no error.
* other span events → events (``exception`` at level error); attributes → span metadata, with
  ``otel.kind``, ``otel.scope.name``/``otel.scope.version`` and ``otel.status_code``.
* resource attributes (``service.name``, …) → the trace's metadata; ``trulayer.project`` names
  the project (else the API key's default project, as for JSON ingest).
* session: ``session.id`` or ``gen_ai.conversation.id``.

Rejected spans (OTLP partial success, counted and named in the answer): ids that are not 16/8
bytes or all zero, no start time, an end before the start, times outside the window JSON ingest
accepts (:mod:`trulayer_common.schemas.bounds`), a span longer than 7 days, or wire values of
the wrong type. Parts hold at most :data:`MAX_SPANS_PER_PART` spans
and as many events, the fan-out JSON ingest accepts per trace: a larger trace is cut in parts.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.otlp_wire import OtlpEvent, OtlpSpan
from trulayer_common.schemas.bounds import (
    MAX_COST,
    MAX_EVENTS_PER_TRACE,
    MAX_FUTURE,
    MAX_LATENCY_MS,
    MAX_PAST,
    MAX_SPANS_PER_TRACE,
    MAX_TOKENS,
)
from trulayer_common.schemas.ingest import TraceRequest

# The bounds of JSON ingest (docs/limits.md): a part never holds what a trace could not.
MAX_SPANS_PER_PART = MAX_SPANS_PER_TRACE
MAX_EVENTS_PER_PART = MAX_EVENTS_PER_TRACE
MAX_NAME_CHARS = 1024
MAX_ID_CHARS = 256
MAX_EXAMPLES = 5  # rejected spans named in the answer's errorMessage

PROJECT_ATTRIBUTE = "trulayer.project"
_KIND_NAMES = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_STATUS_NAMES = {1: "OK", 2: "ERROR"}
_STATUS_OK, _STATUS_ERROR = 1, 2
_LLM_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings", "completion"})
_SPAN_TYPES = frozenset({"llm", "tool", "retrieval", "other"})
_INDEXED = re.compile(r"^gen_ai\.(prompt|completion)\.(\d+)\.(.+)$")
_CONTENT_EVENTS = {"gen_ai.content.prompt": "gen_ai.prompt", "gen_ai.content.completion": "gen_ai.completion"}
# Attributes that become input/output, not metadata.
_CONTENT_KEYS = frozenset(
    {
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.prompt",
        "gen_ai.completion",
        "input.value",
        "output.value",
    }
)
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


@dataclass
class MappedExport:
    """The parts of one export (with their dedup keys, in the same order) and what was rejected."""

    parts: list[TraceRequest] = field(default_factory=list)
    dedup_keys: list[str] = field(default_factory=list)
    spans: list[int] = field(default_factory=list)  # spans per part
    rejected: int = 0
    examples: list[str] = field(default_factory=list)

    def reject(self, span: OtlpSpan, reason: str) -> None:
        self.rejected += 1
        if len(self.examples) < MAX_EXAMPLES:
            who = f"span {span.span_id or '?'}"
            if span.name:
                who += f" '{span.name[:64]}'"
            self.examples.append(f"{who}: {reason}")

    def error_message(self) -> str:
        if not self.rejected:
            return ""
        more = f" (and {self.rejected - len(self.examples)} more)" if self.rejected > len(self.examples) else ""
        return f"{self.rejected} span(s) rejected: " + "; ".join(self.examples) + more


def map_export(spans: Sequence[OtlpSpan], received_at: datetime) -> MappedExport:
    """The parts of an export's spans; ``received_at`` bounds the accepted timestamps."""
    out = MappedExport()
    low = _unix_nano(received_at - MAX_PAST)
    high = _unix_nano(received_at + MAX_FUTURE)
    groups: dict[tuple[str, str | None], list[OtlpSpan]] = {}
    for span in spans:
        reason = _problem(span, low, high)
        if reason is not None:
            out.reject(span, reason)
            continue
        groups.setdefault((span.trace_id, _project(span.resource)), []).append(span)
    for (trace_id, project), members in groups.items():
        members.sort(key=lambda s: (s.start_unix_nano, s.span_id))
        for chunk in _chunks(members):
            part = _part(trace_id, project, chunk)
            out.parts.append(part)
            out.dedup_keys.append(_dedup_key(trace_id, project, chunk))
            out.spans.append(len(chunk))
    return out


def _unix_nano(value: datetime) -> int:
    return int(value.timestamp() * 1_000_000) * 1000


def _problem(span: OtlpSpan, low: int, high: int) -> str | None:
    if span.problem is not None:
        return span.problem
    if len(span.trace_id) != 32 or span.trace_id == _ZERO_TRACE:
        return "invalid trace id (16 bytes, not all zero)"
    if len(span.span_id) != 16 or span.span_id == _ZERO_SPAN:
        return "invalid span id (8 bytes, not all zero)"
    if span.parent_span_id and len(span.parent_span_id) != 16:
        return "invalid parent span id (8 bytes)"
    if span.start_unix_nano <= 0:
        return "no start time"
    if span.end_unix_nano and span.end_unix_nano < span.start_unix_nano:
        return "ends before it starts"
    if span.start_unix_nano < low or max(span.start_unix_nano, span.end_unix_nano) > high:
        return "timestamps outside the accepted window (365 days before to 1 day after receipt)"
    if span.end_unix_nano and (span.end_unix_nano - span.start_unix_nano) / 1e6 > MAX_LATENCY_MS:
        return "lasts longer than 7 days"
    return None


def _project(resource: dict[str, Any]) -> str | None:
    value = resource.get(PROJECT_ATTRIBUTE)
    return value[:MAX_ID_CHARS] if isinstance(value, str) and value else None


def _chunks(spans: list[OtlpSpan]) -> Iterable[list[OtlpSpan]]:
    """Runs of spans within the per-part bounds (a span's events travel with it)."""
    chunk: list[OtlpSpan] = []
    events = 0
    for span in spans:
        count = min(len(span.events), MAX_EVENTS_PER_PART)
        if chunk and (len(chunk) >= MAX_SPANS_PER_PART or events + count > MAX_EVENTS_PER_PART):
            yield chunk
            chunk, events = [], 0
        chunk.append(span)
        events += count
    if chunk:
        yield chunk


def _dedup_key(trace_id: str, project: str | None, spans: list[OtlpSpan]) -> str:
    """Same spans of the same trace again (an exporter's retry) → same key → a duplicate."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(f"{project or ''}\x00".encode())
    for span in spans:
        digest.update(bytes.fromhex(span.span_id))
    return f"otlp:{trace_id}:{digest.hexdigest()}"


# -- one part -----------------------------------------------------------------------------------


def _time(unix_nano: int) -> datetime:
    return datetime.fromtimestamp(unix_nano // 1000 / 1_000_000, tz=UTC)


def _part(trace_id: str, project: str | None, spans: list[OtlpSpan]) -> TraceRequest:
    mapped = [_span(s) for s in spans]
    root_index = next((i for i, s in enumerate(spans) if not s.parent_span_id), None)
    first_llm = next((m for m in mapped if m["type"] == "llm"), None)
    last_llm = next((m for m in reversed(mapped) if m["type"] == "llm"), None)
    top = mapped[root_index] if root_index is not None else mapped[0]
    resource = spans[root_index if root_index is not None else 0].resource
    events = [event for m in mapped for event in m.pop("_events")]
    if root_index is not None:
        started, ended = spans[root_index].start_unix_nano, spans[root_index].end_unix_nano
        error = top.get("error")
    else:
        started = min(s.start_unix_nano for s in spans)
        ended = max(s.end_unix_nano for s in spans)
        error = next((m["error"] for m in mapped if m.get("error")), None)
    costs = [m["cost"] for m in mapped if m.get("cost") is not None]
    part: dict[str, Any] = {
        "id": trace_id,
        "name": top["name"],
        "started_at": _time(started),
        "ended_at": _time(ended) if ended else None,
        "latency_ms": (ended - started) / 1e6 if ended else None,
        "model": top.get("model") or (first_llm or {}).get("model"),
        "input": top.get("input") if top.get("input") is not None else (first_llm or {}).get("input"),
        "output": top.get("output") if top.get("output") is not None else (last_llm or {}).get("output"),
        "error": error,
        "prompt_tokens": sum(m.get("prompt_tokens") or 0 for m in mapped),
        "completion_tokens": sum(m.get("completion_tokens") or 0 for m in mapped),
        "cost": sum(costs) if costs else None,
        "metadata": {k: v for k, v in resource.items() if k != PROJECT_ATTRIBUTE},
        "spans": mapped,
        "events": events,
        "otlp": {"root": root_index is not None},
    }
    if project is not None:
        part["project_id"] = project
    session = next((s for s in (_session(x) for x in _root_first(spans, root_index)) if s), None)
    if session is not None:
        part["session_id"] = session
    return part  # type: ignore[return-value]  # a TraceRequest plus the record's otlp marker


def _root_first(spans: list[OtlpSpan], root_index: int | None) -> list[OtlpSpan]:
    return spans if root_index is None else [spans[root_index], *spans]


def _session(span: OtlpSpan) -> str | None:
    for key in ("session.id", "gen_ai.conversation.id"):
        value = span.attributes.get(key)
        if isinstance(value, str) and value:
            return value[:MAX_ID_CHARS]
    return None


def _span(span: OtlpSpan) -> dict[str, Any]:
    attrs = span.attributes
    content = dict(_indexed_messages(attrs))
    events: list[dict[str, Any]] = []
    exception: str | None = None
    for i, event in enumerate(span.events[:MAX_EVENTS_PER_PART]):
        carried = _CONTENT_EVENTS.get(event.name)
        if carried is not None and carried in event.attributes:
            content.setdefault(carried, event.attributes[carried])
            continue
        if event.name == "exception" and exception is None:
            exception = _exception_text(event)
        events.append(_event(span, i, event))
    model = _text(attrs.get("gen_ai.response.model")) or _text(attrs.get("gen_ai.request.model"))
    model = model or _text(attrs.get("llm.model_name"))
    metadata = {k: v for k, v in attrs.items() if k not in _CONTENT_KEYS and not _INDEXED.match(k)}
    metadata["otel.kind"] = _KIND_NAMES.get(span.kind, str(span.kind))
    if span.scope_name:
        metadata["otel.scope.name"] = span.scope_name
    if span.scope_version:
        metadata["otel.scope.version"] = span.scope_version
    if span.status_code in _STATUS_NAMES:
        metadata["otel.status_code"] = _STATUS_NAMES[span.status_code]
    if len(span.events) > MAX_EVENTS_PER_PART:
        metadata["otel.dropped_events"] = len(span.events) - MAX_EVENTS_PER_PART
    out: dict[str, Any] = {
        "id": span.span_id,
        "parent_span_id": span.parent_span_id or None,
        "name": (span.name or "(unnamed)")[:MAX_NAME_CHARS],
        "type": _span_type(attrs, model),
        "model": model,
        "input": _content(
            attrs.get("gen_ai.input.messages"),
            attrs.get("gen_ai.prompt"),
            content.get("gen_ai.prompt"),
            attrs.get("input.value"),
        ),
        "output": _content(
            attrs.get("gen_ai.output.messages"),
            attrs.get("gen_ai.completion"),
            content.get("gen_ai.completion"),
            attrs.get("output.value"),
        ),
        "error": _error(span, exception),
        "prompt_tokens": _tokens(
            attrs, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"
        ),
        "completion_tokens": _tokens(
            attrs, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion"
        ),
        "cost": _cost(attrs),
        "metadata": metadata,
        "start_time": _time(span.start_unix_nano),
        "end_time": _time(span.end_unix_nano) if span.end_unix_nano else None,
        "latency_ms": (span.end_unix_nano - span.start_unix_nano) / 1e6 if span.end_unix_nano else None,
        "_events": events,
    }
    return out


def _span_type(attrs: dict[str, Any], model: str | None) -> str:
    explicit = attrs.get("trulayer.span.type")
    if isinstance(explicit, str) and explicit in _SPAN_TYPES:
        return explicit
    operation = attrs.get("gen_ai.operation.name")
    if operation == "execute_tool":
        return "tool"
    if operation in _LLM_OPERATIONS:
        return "llm"
    if operation in ("retrieval", "retrieve"):
        return "retrieval"
    if model and ("gen_ai.provider.name" in attrs or "gen_ai.system" in attrs or "llm.model_name" in attrs):
        return "llm"
    return "other"


def _text(value: Any) -> str | None:
    return value[:MAX_NAME_CHARS] if isinstance(value, str) and value else None


def _content(*candidates: Any) -> Any:
    """The first present candidate; JSON text (the semantic conventions' encoding of message
    lists on attributes) becomes the JSON value, other text stays text."""
    for value in candidates:
        if value is None or value == "":
            continue
        if isinstance(value, str) and value[:1] in ("[", "{"):
            try:
                return orjson.loads(value)
            except orjson.JSONDecodeError:
                return value
        return value
    return None


def _indexed_messages(attrs: dict[str, Any]) -> Iterable[tuple[str, list[dict[str, Any]]]]:
    """``gen_ai.prompt.0.role=user``, ``gen_ai.prompt.0.content=hi`` → ``[{"role", "content"}]``."""
    found: dict[str, dict[int, dict[str, Any]]] = {}
    for key, value in attrs.items():
        match = _INDEXED.match(key)
        if match:
            kind, index, name = match.groups()
            found.setdefault(f"gen_ai.{kind}", {}).setdefault(int(index), {})[name] = value
    for key, messages in found.items():
        yield key, [messages[i] for i in sorted(messages)]


def _exception_text(event: OtlpEvent) -> str:
    kind = event.attributes.get("exception.type")
    message = event.attributes.get("exception.message")
    return ": ".join(str(p) for p in (kind, message) if p) or "exception"


def _error(span: OtlpSpan, exception: str | None) -> str | None:
    if span.status_code == _STATUS_OK:
        return None
    error_type = span.attributes.get("error.type")
    error_type = str(error_type) if error_type not in (None, "") else None
    if span.status_code != _STATUS_ERROR and error_type is None:
        return None
    message = span.status_message or exception
    if error_type and message and error_type not in message:
        return f"{error_type}: {message}"
    return message or error_type or "error"


def _tokens(attrs: dict[str, Any], *names: str) -> int | None:
    for name in names:
        value = attrs.get(name)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS:
            return value
    return None


def _cost(attrs: dict[str, Any]) -> float | None:
    for name in ("gen_ai.usage.cost", "trulayer.cost"):
        value = attrs.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
            return float(value) if value <= MAX_COST else None
    return None


def _event(span: OtlpSpan, index: int, event: OtlpEvent) -> dict[str, Any]:
    level = "error" if event.name == "exception" else "info"
    message = event.name or "(unnamed event)"
    if event.name == "exception":
        message = f"exception: {_exception_text(event)}"
    # Within the span (whose times were checked): an event time outside it is not trusted.
    end = span.end_unix_nano or span.start_unix_nano
    timestamp = min(max(event.time_unix_nano, span.start_unix_nano), end)
    return {
        # Stable across retries and redelivery: the span's id and the event's position.
        "id": f"{span.span_id}-{index}",
        "span_id": span.span_id,
        "level": level,
        "message": message,
        "metadata": event.attributes,
        "timestamp": _time(timestamp),
    }
