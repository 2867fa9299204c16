"""``client.trace()`` and ``trace.span()``: context managers (sync and async) that record a
trace and its spans, with the public TruLayer SDK's names and setters.

Recording happens on the application's thread and touches memory only: leaving the outermost
``with`` builds the trace's wire payload and hands it to the client's background sender. In the
default ``log`` mode nothing here raises into the application (an exception of the ``with``
body is recorded as the error and propagates unchanged). Spans nest: a span opened inside
another gets it as ``parent_span_id``. A trace's ``model`` and ``cost``, when not set, roll up
from its spans (the first LLM span's model, the sum of the spans' costs).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Self

from trulayer_sdk.sampling import sampled

if TYPE_CHECKING:
    from trulayer_sdk.client import TruLayerClient

_current_trace: contextvars.ContextVar[TraceContext | None] = contextvars.ContextVar("trulayer_trace", default=None)
_current_span: contextvars.ContextVar[SpanContext | None] = contextvars.ContextVar("trulayer_span", default=None)
_SCRUBBED = ("input", "output", "error")
logger = logging.getLogger("trulayer")


def current_trace() -> TraceContext | None:
    """The trace open in this context (thread or task), or ``None``."""
    return _current_trace.get()


def _reset(var: contextvars.ContextVar[Any], token: contextvars.Token[Any]) -> None:
    # A context left in another context than it was entered (a generator finalised elsewhere).
    with contextlib.suppress(ValueError):
        var.reset(token)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds")


def _error_text(exc_type: type[BaseException], exc: BaseException | None, tb: TracebackType | None) -> str:
    return "".join(traceback.format_exception(exc_type, exc, tb))


class _Current:
    """The ``with`` protocol of a trace or a span: entering starts it and makes it the current one
    of its context variable (``_var``); leaving restores the previous one and ends it."""

    __slots__ = ("_token",)
    _var: ClassVar[contextvars.ContextVar[Any]]
    _token: contextvars.Token[Any] | None

    def start(self) -> None:
        raise NotImplementedError

    def end(
        self, exc_type: type[BaseException] | None = None, exc: BaseException | None = None, tb: Any = None
    ) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        self._token = self._var.set(self)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._token is not None:
            _reset(self._var, self._token)
            self._token = None
        self.end(exc_type, exc, tb)

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)


class SpanContext(_Current):
    """One span of a trace. Setters may be called inside the ``with`` block."""

    __slots__ = ("_data", "_start", "_started", "_trace")
    _var = _current_span

    def __init__(self, trace: TraceContext, name: str, span_type: str = "other") -> None:
        self._trace = trace
        self._data: dict[str, Any] = {"id": str(uuid.uuid4()), "name": name, "type": span_type, "metadata": {}}
        self._start = 0.0
        self._started = 0.0
        self._token: contextvars.Token[SpanContext | None] | None = None

    @property
    def id(self) -> str:
        return str(self._data["id"])

    def set_input(self, value: Any) -> None:
        self._data["input"] = value

    def set_output(self, value: Any) -> None:
        self._data["output"] = value

    def set_model(self, model: str) -> None:
        self._data["model"] = model

    def set_tokens(self, prompt: int | None = None, completion: int | None = None) -> None:
        self._data["prompt_tokens"] = prompt
        self._data["completion_tokens"] = completion

    def set_cost(self, cost: float | None) -> None:
        self._data["cost"] = cost

    def set_error(self, error: str | None) -> None:
        self._data["error"] = error

    def set_latency_ms(self, latency_ms: float) -> None:
        self._data["latency_ms"] = latency_ms

    def set_metadata(self, **kwargs: Any) -> None:
        self._data["metadata"].update(kwargs)

    def start(self) -> None:
        """Start timing (``__enter__`` without making it the current span: for a span whose
        end happens in another context, e.g. a streamed LLM answer consumed elsewhere)."""
        parent = _current_span.get()
        if parent is not None and parent._trace is self._trace:
            self._data["parent_span_id"] = parent.id
        self._started = time.time()
        self._start = time.perf_counter()

    def end(
        self, exc_type: type[BaseException] | None = None, exc: BaseException | None = None, tb: Any = None
    ) -> None:
        """Stop timing and add the span to its trace (``__exit__`` without the context)."""
        try:
            elapsed = time.perf_counter() - self._start
            data = self._data
            data.setdefault("latency_ms", elapsed * 1000.0)
            data["start_time"] = _iso(self._started)
            data["end_time"] = _iso(self._started + elapsed)
            if exc_type is not None and data.get("error") is None:
                data["error"] = _error_text(exc_type, exc, tb)
            self._trace._spans.append(data)
        except Exception:  # recording never breaks the application
            logger.debug("trulayer.recording_error", exc_info=True)


class TraceContext(_Current):
    """One trace. Leaving it hands the trace to the client's background sender."""

    _var = _current_trace

    def __init__(
        self,
        client: TruLayerClient,
        name: str | None = None,
        session_id: str | None = None,
        external_id: str | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        tag_map: dict[str, str] | None = None,
    ) -> None:
        self._client = client
        self._data: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "project_id": client.project_name,
            "name": name,
            "session_id": session_id,
            "external_id": external_id,
            "metadata": dict(metadata or {}),
        }
        self._tags: list[str] = list(tags or [])
        self._tag_map: dict[str, str] | None = dict(tag_map) if tag_map is not None else None
        self._spans: list[dict[str, Any]] = []
        self._start = 0.0
        self._started = 0.0
        self._sampled = True
        self._token: contextvars.Token[TraceContext | None] | None = None

    @property
    def id(self) -> str:
        """The trace id (what ``client.feedback(trace_id, ...)`` takes)."""
        return str(self._data["id"])

    @property
    def sampled(self) -> bool:
        return self._sampled

    def span(self, name: str, span_type: str = "other") -> SpanContext:
        return SpanContext(self, name, span_type)

    def set_input(self, value: Any) -> None:
        self._data["input"] = value

    def set_output(self, value: Any) -> None:
        self._data["output"] = value

    def set_model(self, model: str) -> None:
        self._data["model"] = model

    def set_cost(self, cost: float | None) -> None:
        self._data["cost"] = cost

    def set_error(self, error: str | None) -> None:
        self._data["error"] = error

    def set_metadata(self, **kwargs: Any) -> None:
        self._data["metadata"].update(kwargs)

    def add_tag(self, tag: str) -> None:
        self._tags.append(tag)

    def set_tag(self, key: str, value: str) -> None:
        """A key → value tag (filterable with ``tag_key``/``tag_value``); wins over list tags."""
        if self._tag_map is None:
            self._tag_map = {}
        self._tag_map[key] = value

    def start(self) -> None:
        """Start timing (``__enter__`` without making it the current trace)."""
        self._sampled = sampled(self.id, self._client.sample_rate)
        self._started = time.time()
        self._start = time.perf_counter()

    def end(
        self, exc_type: type[BaseException] | None = None, exc: BaseException | None = None, tb: Any = None
    ) -> None:
        """Stop timing and hand the trace to the sender (``__exit__`` without the context)."""
        if not self._sampled:
            return
        try:
            payload = self._payload(exc_type, exc, tb)
        except Exception:  # recording never breaks the application
            logger.debug("trulayer.recording_error", exc_info=True)
            return
        # The one call that may raise: in "throw" mode, by the application's choice.
        self._client._record(payload, raising=exc_type is None)

    def _payload(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> dict[str, Any]:
        elapsed = time.perf_counter() - self._start
        data = self._data
        data.setdefault("latency_ms", elapsed * 1000.0)
        data["started_at"] = _iso(self._started)
        data["ended_at"] = _iso(self._started + elapsed)
        if exc_type is not None and data.get("error") is None:
            data["error"] = _error_text(exc_type, exc, tb)
        spans = self._spans
        if data.get("model") is None:
            data["model"] = next((s["model"] for s in spans if s.get("type") == "llm" and s.get("model")), None)
        if data.get("cost") is None:
            costs = [s["cost"] for s in spans if s.get("cost") is not None]
            data["cost"] = sum(costs) if costs else None
        if self._tag_map:
            data["tags"] = dict(self._tag_map)
        elif self._tags:
            data["tags"] = list(self._tags)
        data["spans"] = spans
        client = self._client
        if client.scrub_fn is not None:
            _scrub(data, client.scrub_fn)
        if client.metadata_validator is not None:
            _validate_metadata(data, client.metadata_validator)
        return data


def _scrub(data: dict[str, Any], scrub: Callable[[str], str]) -> None:
    for item in (data, *data["spans"]):
        for field in _SCRUBBED:
            value = item.get(field)
            if isinstance(value, str):
                try:
                    item[field] = scrub(value)
                except Exception:
                    item[field] = "[scrub_fn failed]"  # never send what the scrubber could not clean


def _validate_metadata(data: dict[str, Any], validator: Callable[[dict[str, Any]], None]) -> None:
    for item in (data, *data["spans"]):
        metadata = item.get("metadata")
        if isinstance(metadata, dict):
            try:
                validator(metadata)
            except Exception:
                item["metadata"] = {}
