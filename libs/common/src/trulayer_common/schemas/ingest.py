"""Ingest request models: TruLayer traces (with spans and events) and GuardLayer call records.

Unknown fields are ignored (clients may be newer than us). Aliases accept the names that
TruLayer and GuardLayer clients send (``start_time``/``started_at``, ``warning`` level, ...).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from trulayer_common.errors import ApiError

MAX_BATCH = 100
MAX_TAGS = 20
MAX_TAG_CHARS = 64
MAX_ID_CHARS = 256

Identifier = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]
NonNegative = Annotated[float, Field(ge=0)]
TokenCount = Annotated[int, Field(ge=0)]


class _Wire(BaseModel):
    # No global str_max_length: it doubles validation time, and the body size limit bounds strings.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


# Alternative spellings are accepted as they come and normalised by the ingest-worker's pure
# transform (see SPAN_TYPES / EVENT_LEVELS): Python validators here would cost more than the
# Rust validation of the whole trace.
SPAN_TYPES = {"llm": "llm", "tool": "tool", "retrieval": "retrieval", "other": "other", "default": "other"}
EVENT_LEVELS = {
    "info": "info",
    "debug": "info",
    "warn": "warn",
    "warning": "warn",
    "error": "error",
    "critical": "error",
    "fatal": "error",
}


class EventRequest(_Wire):
    id: Identifier | None = None
    span_id: Identifier | None = None
    level: Literal["info", "debug", "warn", "warning", "error", "critical", "fatal"] | None = None
    message: str
    metadata: dict[str, Any] | None = None
    timestamp: datetime | None = None


class SpanRequest(_Wire):
    id: Identifier | None = None
    parent_span_id: Identifier | None = None
    name: Annotated[str, Field(min_length=1, max_length=1024)]
    type: Literal["llm", "tool", "retrieval", "other", "default"] | None = Field(
        default=None, validation_alias=AliasChoices("type", "span_type")
    )
    input: Any = None
    output: Any = None
    model: str | None = None
    latency_ms: NonNegative | None = None
    cost: NonNegative | None = None
    error: str | None = None
    prompt_tokens: TokenCount | None = None
    completion_tokens: TokenCount | None = None
    metadata: dict[str, Any] | None = None
    start_time: datetime | None = Field(default=None, validation_alias=AliasChoices("start_time", "started_at"))
    end_time: datetime | None = Field(default=None, validation_alias=AliasChoices("end_time", "ended_at"))


_Tag = Annotated[str, Field(max_length=MAX_TAG_CHARS)]
Tags = dict[_Tag, _Tag] | list[_Tag]


class TraceRequest(_Wire):
    """One trace as TruLayer SDKs send it. GuardLayer's flat call fields are accepted too."""

    id: Identifier | None = None
    project_id: Annotated[str, Field(max_length=MAX_ID_CHARS)] | None = None
    session_id: Annotated[str, Field(max_length=MAX_ID_CHARS)] | None = None
    external_id: Annotated[str, Field(max_length=MAX_ID_CHARS)] | None = None
    name: Annotated[str, Field(max_length=1024)] | None = None
    input: Any = None
    output: Any = None
    model: str | None = None
    latency_ms: NonNegative | None = None
    cost: NonNegative | None = Field(default=None, validation_alias=AliasChoices("cost", "cost_usd"))
    error: str | None = None
    prompt_tokens: TokenCount | None = Field(default=None, validation_alias=AliasChoices("prompt_tokens", "tokens_in"))
    completion_tokens: TokenCount | None = Field(
        default=None, validation_alias=AliasChoices("completion_tokens", "tokens_out")
    )
    tags: Tags | None = Field(default=None, union_mode="left_to_right")
    metadata: dict[str, Any] | None = None
    started_at: datetime | None = Field(default=None, validation_alias=AliasChoices("started_at", "start_time"))
    ended_at: datetime | None = Field(default=None, validation_alias=AliasChoices("ended_at", "end_time"))
    spans: Annotated[list[SpanRequest], Field(max_length=10_000)] = Field(default_factory=list)
    events: Annotated[list[EventRequest], Field(max_length=10_000)] = Field(default_factory=list)
    # GuardLayer's flat call fields, folded into error/metadata after validation.
    status: Annotated[str, Field(max_length=256)] | None = Field(default=None, exclude=True)
    guardrail_flags: list[Any] | None = Field(default=None, exclude=True)

    def fold_guardlayer_fields(self) -> None:
        """A non-success ``status`` becomes the error; ``guardrail_flags`` go to metadata.

        Called by the gateway while it completes the trace (not a validator: a Python call per
        trace during validation costs more than the rest of the validation).
        """
        if self.status is not None:
            if self.error is None and self.status.lower() not in ("success", "ok"):
                self.error = self.status
            self.status = None
        if self.guardrail_flags:
            self.metadata = {**(self.metadata or {}), "guardrail_flags": self.guardrail_flags}
        self.guardrail_flags = None

    @field_validator("tags")
    @classmethod
    def _tag_count(cls, value: list[str] | dict[str, str] | None) -> list[str] | dict[str, str] | None:
        if value is not None and len(value) > MAX_TAGS:
            raise ValueError(f"at most {MAX_TAGS} tags")
        return value


class GuardLayerCall(_Wire):
    """GuardLayer's flat call record: ``model`` and ``latency_ms`` are required."""

    id: Identifier | None = None
    model: Annotated[str, Field(min_length=1, max_length=1024)]
    latency_ms: NonNegative
    tokens_in: TokenCount = 0
    tokens_out: TokenCount = 0
    cost_usd: NonNegative = 0.0
    status: Annotated[str, Field(max_length=256)] = "success"
    guardrail_flags: list[Any] = Field(default_factory=list)
    project_id: Annotated[str, Field(max_length=MAX_ID_CHARS)] | None = None
    metadata: dict[str, Any] | None = None

    def to_trace(self) -> TraceRequest:
        error = None if self.status.lower() in ("success", "ok") else self.status
        metadata = dict(self.metadata or {})
        metadata["status"] = self.status
        if self.guardrail_flags:
            metadata["guardrail_flags"] = self.guardrail_flags
        return TraceRequest(
            id=self.id,
            project_id=self.project_id,
            name=self.model,
            model=self.model,
            latency_ms=self.latency_ms,
            prompt_tokens=self.tokens_in,
            completion_tokens=self.tokens_out,
            cost=self.cost_usd,
            error=error,
            metadata=metadata,
        )


class BatchRequest(_Wire):
    """``{"traces": [...]}`` (TruLayer) or ``{"calls": [...]}`` (GuardLayer), at most 100 items."""

    traces: list[TraceRequest] | None = None
    calls: list[GuardLayerCall] | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_shape(cls, data: Any) -> Any:
        if isinstance(data, dict):
            traces, calls = data.get("traces"), data.get("calls")
            if traces is None and calls is None:
                raise ValueError("body must have a 'traces' or a 'calls' array")
            if traces is not None and calls is not None:
                raise ValueError("send either 'traces' or 'calls', not both")
            # Checked before item validation so an oversized batch is rejected cheaply.
            items = traces if traces is not None else calls
            if isinstance(items, list) and len(items) > MAX_BATCH:
                raise BatchTooLargeError
        return data

    def as_traces(self) -> list[TraceRequest]:
        if self.traces is not None:
            return self.traces
        return [call.to_trace() for call in self.calls or []]


class BatchTooLargeError(ValueError):
    """More than :data:`MAX_BATCH` items in one batch request: API.md's own 400 body."""

    api_error = ApiError(400, f"Max {MAX_BATCH} events per batch", "batch_too_large")

    def __init__(self) -> None:
        super().__init__(f"Max {MAX_BATCH} events per batch")
