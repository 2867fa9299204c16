"""OpenAI instrumentation: chat completions (sync, async, streaming) recorded, policies applied.

``instrument_openai(client)`` patches ``openai.resources.chat.completions.Completions.create``
and ``AsyncCompletions.create`` in place (as the public TruLayer SDK does; idempotent, the
latest client records; ``uninstrument_openai()`` restores them). Each call:

1. **Policy first**: when ``client.policy`` is set, ``policy.decide(model, project_id=<project>,
   request_key=<trace id>)`` runs before the request. ``block`` raises
   :class:`~trulayer_sdk.errors.PolicyBlockedError` (the call is not made, the blocked call is
   recorded); ``route`` replaces ``model`` with the decision's ``target_model``. A dry-run
   decision is recorded, not applied.
2. **Recording**: an ``llm`` span ``openai.chat.completions`` in the current trace, or, outside
   any trace, a trace of its own holding that span. It has the model (the answer's, else the
   requested one), the messages and the answer, prompt/completion tokens, latency, cost
   (:mod:`trulayer_sdk.pricing`) and the error of a failed call (which is re-raised unchanged).
   A stream is recorded when it ends (exhausted, closed, left, or failed) with the text it
   delivered; its tokens and cost are known only when the application asked for them
   (``stream_options={"include_usage": True}``): the instrumentation does not change the request.

Recording never raises into the application; a policy block does, by design.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from trulayer_sdk.errors import PolicyBlockedError
from trulayer_sdk.pricing import OPENAI_PRICES, ModelPrice, cost_of
from trulayer_sdk.trace import SpanContext, TraceContext, current_trace

if TYPE_CHECKING:
    from trulayer_sdk.client import TruLayerClient

SPAN_NAME = "openai.chat.completions"
logger = logging.getLogger("trulayer")
_originals: dict[str, Any] = {}
_active: dict[str, Any] = {}


def instrument_openai(client: TruLayerClient, *, prices: Mapping[str, ModelPrice] | None = None) -> None:
    """Record every OpenAI chat completion with ``client`` (and apply ``client.policy``)."""
    from openai.resources.chat import completions  # noqa: PLC0415  # optional dependency

    _active["client"] = client
    _active["prices"] = {**OPENAI_PRICES, **(prices or {})}
    if _originals:
        return
    _originals["sync"] = completions.Completions.create
    _originals["async"] = completions.AsyncCompletions.create
    completions.Completions.create = _sync_create(_originals["sync"])  # type: ignore[method-assign]
    completions.AsyncCompletions.create = _async_create(_originals["async"])  # type: ignore[method-assign]


def uninstrument_openai() -> None:
    if not _originals:
        return
    from openai.resources.chat import completions  # noqa: PLC0415

    completions.Completions.create = _originals.pop("sync")  # type: ignore[method-assign]
    completions.AsyncCompletions.create = _originals.pop("async")  # type: ignore[method-assign]
    _active.clear()


def _sync_create(original: Any) -> Any:
    @functools.wraps(original)
    def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = _Call.begin(kwargs)
        if call is None:
            return original(self, *args, **kwargs)
        try:
            result = original(self, *args, **kwargs)
        except BaseException as exc:
            call.finish(error=exc)
            raise
        if kwargs.get("stream"):
            return _RecordedStream(result, call)
        call.finish(response=result)
        return result

    return create


def _async_create(original: Any) -> Any:
    @functools.wraps(original)
    async def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = _Call.begin(kwargs)
        if call is None:
            return await original(self, *args, **kwargs)
        try:
            result = await original(self, *args, **kwargs)
        except BaseException as exc:
            call.finish(error=exc)
            raise
        if kwargs.get("stream"):
            return _RecordedAsyncStream(result, call)
        call.finish(response=result)
        return result

    return create


def _plain(value: Any) -> Any:
    """Messages and answers as JSON-able values (pydantic objects dumped)."""
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return dump(exclude_none=True)
        except Exception:
            return str(value)
    return value


class _Call:
    """One chat completion being recorded."""

    def __init__(self, client: TruLayerClient, prices: Mapping[str, ModelPrice], kwargs: dict[str, Any]) -> None:
        self.client = client
        self.prices = prices
        self.own_trace: TraceContext | None = None
        trace = current_trace()
        if trace is None:
            trace = self.own_trace = client.trace(name=SPAN_NAME)
            trace.start()
            trace.set_input(_plain(kwargs.get("messages")))
        self.trace = trace
        self.span: SpanContext = trace.span(SPAN_NAME, "llm")
        self.span.start()
        self.requested = kwargs.get("model")
        self.span.set_model(self.requested or "")
        self.span.set_input(_plain(kwargs.get("messages")))
        self.span.set_metadata(provider="openai", stream=bool(kwargs.get("stream")))
        self.finished = False

    @classmethod
    def begin(cls, kwargs: dict[str, Any]) -> _Call | None:
        """Start recording (``None`` when not instrumented); apply the policy, which may block
        (raises) or route (changes ``kwargs["model"]``)."""
        client = _active.get("client")
        if client is None:
            return None
        try:
            call = cls(client, _active["prices"], kwargs)
        except Exception:  # recording never breaks the call
            return None
        try:
            call.apply_policy(kwargs)
        except BaseException as exc:  # a block, or a policy client that cannot decide: no call
            call.finish(error=exc)
            raise
        return call

    def apply_policy(self, kwargs: dict[str, Any]) -> None:
        policy = self.client.policy
        if policy is None:
            return
        decision = policy.decide(
            str(self.requested or ""), project_id=self.client.project_name, request_key=self.trace.id
        )
        self.span.set_metadata(
            policy_decision=decision.decision,
            policy_rule_id=decision.rule_id,
            policy_reason=decision.reason,
            policy_dry_run=decision.dry_run,
        )
        if decision.dry_run:
            return
        if decision.decision == "block":
            error = PolicyBlockedError(decision)
            self.finish(error=error)
            raise error
        if decision.decision == "route" and decision.target_model:
            self.span.set_metadata(requested_model=self.requested)
            kwargs["model"] = decision.target_model
            self.requested = decision.target_model
            self.span.set_model(decision.target_model)

    def finish(
        self,
        *,
        response: Any = None,
        error: BaseException | None = None,
        output: Any = None,
        usage: Any = None,
        model: str | None = None,
    ) -> None:
        if self.finished:
            return
        self.finished = True
        try:
            if response is not None:
                usage = getattr(response, "usage", None)
                model = getattr(response, "model", None)
                output = _answer(response)
            span = self.span
            model = model or self.requested
            if model:
                span.set_model(model)
            prompt = getattr(usage, "prompt_tokens", None) if usage is not None else None
            completion = getattr(usage, "completion_tokens", None) if usage is not None else None
            span.set_tokens(prompt, completion)
            span.set_cost(cost_of(model, prompt, completion, self.prices))
            if output is not None:
                span.set_output(output)
            exc_info: tuple[Any, Any, TracebackType | None] = (None, None, None)
            if error is not None:
                span.set_error(f"{type(error).__name__}: {error}")
                exc_info = (type(error), error, error.__traceback__)
            span.end(*exc_info)
            own = self.own_trace
            if own is not None:
                if output is not None:
                    own.set_output(output)
                if error is not None:
                    own.set_error(f"{type(error).__name__}: {error}")
                own.end()
        except Exception:  # recording never breaks the call
            logger.debug("trulayer.recording_error", exc_info=True)


def _answer(response: Any) -> Any:
    try:
        message = response.choices[0].message
    except (AttributeError, IndexError, TypeError):
        return None
    content = getattr(message, "content", None)
    if content is not None:
        return content
    calls = getattr(message, "tool_calls", None)
    return _plain(calls) if calls else None


class _StreamRecorder:
    """What a stream delivered: text deltas, the model, usage (when the request asked for it)."""

    def __init__(self, call: _Call) -> None:
        self.call = call
        self.parts: list[str] = []
        self.usage: Any = None
        self.model: str | None = None

    def observe(self, chunk: Any) -> None:
        try:
            self.model = getattr(chunk, "model", None) or self.model
            if getattr(chunk, "usage", None):
                self.usage = chunk.usage
            choices = getattr(chunk, "choices", None)
            if choices:
                delta = getattr(choices[0], "delta", None)
                text = getattr(delta, "content", None)
                if text:
                    self.parts.append(text)
        except Exception:  # a chunk of an unexpected shape is passed on, just not recorded
            logger.debug("trulayer.recording_error", exc_info=True)

    def done(self, error: BaseException | None = None) -> None:
        self.call.finish(error=error, output="".join(self.parts), usage=self.usage, model=self.model)


class _RecordedStream:
    """The ``Stream`` the application gets: the same chunks and API, recorded as they pass."""

    def __init__(self, stream: Any, call: _Call) -> None:
        self._stream = stream
        self._recorder = _StreamRecorder(call)
        self._iterator: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __iter__(self) -> _RecordedStream:
        return self

    def __next__(self) -> Any:
        if self._iterator is None:
            self._iterator = iter(self._stream)
        try:
            chunk = next(self._iterator)
        except StopIteration:
            self._recorder.done()
            raise
        except BaseException as exc:
            self._recorder.done(exc)
            raise
        self._recorder.observe(chunk)
        return chunk

    def __enter__(self) -> _RecordedStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._recorder.done(exc[1])
        self._stream.__exit__(*exc)

    def close(self) -> None:
        self._recorder.done()
        self._stream.close()

    def __del__(self) -> None:  # a loop left early without close(): record what was seen
        recorder = self.__dict__.get("_recorder")
        if recorder is not None:
            recorder.done()


class _RecordedAsyncStream:
    """The ``AsyncStream`` the application gets, recorded as chunks pass."""

    def __init__(self, stream: Any, call: _Call) -> None:
        self._stream = stream
        self._recorder = _StreamRecorder(call)
        self._iterator: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __aiter__(self) -> _RecordedAsyncStream:
        return self

    async def __anext__(self) -> Any:
        if self._iterator is None:
            self._iterator = self._stream.__aiter__()
        try:
            chunk = await self._iterator.__anext__()
        except StopAsyncIteration:
            self._recorder.done()
            raise
        except BaseException as exc:
            self._recorder.done(exc)
            raise
        self._recorder.observe(chunk)
        return chunk

    async def __aenter__(self) -> _RecordedAsyncStream:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self._recorder.done(exc[1])
        await self._stream.__aexit__(*exc)

    async def close(self) -> None:
        self._recorder.done()
        await self._stream.close()

    def __del__(self) -> None:
        recorder = self.__dict__.get("_recorder")
        if recorder is not None:
            recorder.done()
