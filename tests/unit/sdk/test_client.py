"""The SDK client against a real local HTTP server standing in for the API: the wire shape of
traces and feedback, batching, the fail modes (retry, latch, reject, overflow) and flush."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from tests.unit.sdk.fake_api import fake_api
from trulayer_sdk import (
    BufferOverflowError,
    InvalidAPIKeyError,
    ProjectArchivedError,
    TruLayerClient,
    TruLayerFlushError,
    current_trace,
)
from trulayer_sdk.sampling import sampled

DOWN = "http://127.0.0.1:9"  # the discard port: nothing listens there


def client(endpoint: str, **kw: Any) -> TruLayerClient:
    kw.setdefault("flush_interval", 0.05)
    return TruLayerClient(api_key="tl_test", project_name="proj", endpoint=endpoint, **kw)


def test_trace_spans_and_feedback_on_the_wire() -> None:
    with fake_api() as (api, url):
        tl = client(url)
        with tl.trace("answer", session_id="s1", external_id="e1", tags=["a"], metadata={"m": 1}) as t:
            assert current_trace() is t
            t.set_input("q")
            t.add_tag("b")
            t.set_metadata(user="u")
            with t.span("retrieve", span_type="retrieval") as outer:
                outer.set_output({"docs": 2})
                with t.span("llm", "llm") as inner:
                    inner.set_model("gpt-4o")
                    inner.set_tokens(prompt=10, completion=2)
                    inner.set_cost(0.5)
            t.set_output("a")
        assert current_trace() is None
        tl.feedback(t.id, "good", score=1.0, comment="nice", metadata={"by": "me"})
        result = tl.flush(5)
        assert (result.sent, result.dropped, result.pending) == (2, 0, 0)
        (sent,) = api.traces()
        assert sent["id"] == t.id and sent["project_id"] == "proj" and sent["name"] == "answer"
        assert (sent["session_id"], sent["external_id"], sent["input"], sent["output"]) == ("s1", "e1", "q", "a")
        assert sent["tags"] == ["a", "b"] and sent["metadata"] == {"m": 1, "user": "u"}
        assert sent["model"] == "gpt-4o" and sent["cost"] == 0.5  # rolled up from the LLM span
        assert sent["latency_ms"] >= 0 and sent["started_at"] <= sent["ended_at"]
        outer_span, inner_span = sorted(sent["spans"], key=lambda s: s["name"] != "retrieve")
        assert inner_span["parent_span_id"] == outer_span["id"] and "parent_span_id" not in outer_span
        assert (inner_span["type"], inner_span["prompt_tokens"], inner_span["completion_tokens"]) == ("llm", 10, 2)
        assert outer_span["output"] == {"docs": 2}
        assert (
            "/v1/feedback",
            {"trace_id": t.id, "label": "good", "score": 1.0, "comment": "nice", "metadata": {"by": "me"}},
        ) in api.requests
        tl.shutdown(1)


def test_errors_are_recorded_and_propagate_unchanged() -> None:
    with fake_api() as (api, url):
        tl = client(url)
        with pytest.raises(ValueError, match="boom"), tl.trace("fails") as t, t.span("step"):
            raise ValueError("boom")
        tl.flush(5)
        (sent,) = api.traces()
        assert "ValueError: boom" in sent["error"] and "ValueError: boom" in sent["spans"][0]["error"]


async def test_async_context_managers_and_tag_map() -> None:
    with fake_api() as (api, url):
        tl = client(url)
        async with tl.trace("async") as t, t.span("s") as s:
            t.set_tag("env", "prod")
            s.set_metadata(k="v")
        await asyncio.to_thread(tl.flush, 5)
        (sent,) = api.traces()
        assert sent["tags"] == {"env": "prod"} and sent["spans"][0]["metadata"] == {"k": "v"}


def test_batches_hold_at_most_100_traces() -> None:
    with fake_api() as (api, url):
        tl = client(url, batch_size=500, flush_interval=60)
        for i in range(250):
            with tl.trace(f"t{i}"):
                pass
        assert tl.flush(10).sent == 250
        assert [len(b) for b in api.batches()] == [100, 100, 50]
        assert [t["name"] for t in api.traces()] == [f"t{i}" for i in range(250)]


def test_sampling_keeps_the_ids_the_rate_selects() -> None:
    with fake_api() as (api, url):
        tl = client(url, sample_rate=0.3)
        recorded = []
        for _ in range(300):
            with tl.trace() as t:
                recorded.append(t.id)
        tl.flush(10)
        assert {s["id"] for s in api.traces()} == {i for i in recorded if sampled(i, 0.3)}


def test_server_errors_are_retried_with_backoff_then_delivered(caplog: pytest.LogCaptureFixture) -> None:
    with fake_api() as (api, url):
        answers = iter([(503, {"error": "down"}, {"Retry-After": "0"}), (500, {}, {}), (502, {}, {})])
        api.answer = lambda path, body: next(answers, (201, {}, {}))
        tl = client(url)
        with caplog.at_level(logging.WARNING, "trulayer"):
            with tl.trace("kept"):
                pass
            result = tl.flush(30)
        assert (result.sent, result.dropped, result.pending) == (1, 0, 0)
        assert [t["name"] for t in api.traces()] == ["kept"] * 4  # three failed attempts, then delivered
        assert tl.stats().failed_requests == 3 and tl.stats().sent == 1
        # Rate-limited: one warning for the failure window, not one per attempt.
        assert len([r for r in caplog.records if "trulayer.ingest_failed" in r.getMessage()]) == 1


def test_a_4xx_is_isolated_to_the_items_it_refuses() -> None:
    with fake_api() as (api, url):

        def answer(path: str, body: Any) -> Any:
            names = [t["name"] for t in body["traces"]]
            return (400, {"error": "bad"}, {}) if "bad" in names else (201, {}, {})

        api.answer = answer
        tl = client(url, batch_size=10, flush_interval=60)
        for name in ["a", "b", "bad", "c", "d"]:
            with tl.trace(name):
                pass
        result = tl.flush(10)
        assert (result.sent, result.dropped) == (4, 1)
        assert tl.stats().rejected == 1
        delivered = [n for batch in api.batches() if "bad" not in [t["name"] for t in batch] for n in batch]
        assert sorted(t["name"] for t in delivered) == ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, {"code": "unauthorized"}, InvalidAPIKeyError),
        (403, {"code": "error.project.archived"}, ProjectArchivedError),
    ],
)
def test_401_and_403_are_latched_as_permanent(status: int, body: dict[str, Any], error: type) -> None:
    with fake_api() as (api, url):
        api.answer = lambda path, b: (status, body, {})
        tl = client(url, batch_size=2, flush_interval=60)
        for _ in range(5):
            with tl.trace():
                pass
        result = tl.flush(5)
        assert isinstance(tl.fatal_error, error)
        assert result.dropped == 5 and result.pending == 0 and tl.stats().disabled
        requests = len(api.requests)
        with tl.trace():  # recorded and dropped, nothing raised, nothing sent
            pass
        tl.flush(1)
        assert len(api.requests) == requests == 1 and tl.stats().dropped == 6


def test_server_down_recording_returns_at_once_and_the_buffer_stays_bounded() -> None:
    tl = client(DOWN, max_buffer=50)
    durations = []
    for i in range(2_000):
        started = time.perf_counter()
        with tl.trace(f"t{i}") as t, t.span("s"):
            pass
        durations.append(time.perf_counter() - started)
    stats = tl.stats()
    assert stats.pending <= 50 and stats.buffer_overflow >= 2_000 - 50
    assert stats.buffer_overflow == stats.dropped
    durations.sort()
    print(f"\nrecording while the API is down: p50 {durations[1000] * 1e6:.1f} µs, p99 {durations[1980] * 1e6:.1f} µs")
    started = time.perf_counter()
    result = tl.flush(0.3)
    print(f"flush(0.3) returned after {time.perf_counter() - started:.3f} s")
    assert 0 < result.pending <= 50 and result.sent == 0
    tl.shutdown(0.1)


def test_throw_mode_raises_at_flush_and_on_overflow(caplog: pytest.LogCaptureFixture) -> None:
    tl = client(DOWN, max_buffer=1, on_ingest_failure="throw")
    with tl.trace():
        pass
    with caplog.at_level(logging.WARNING, "trulayer"), pytest.raises(BufferOverflowError), tl.trace():
        pass
    assert "trulayer.buffer_overflow" in caplog.text
    with pytest.raises(TruLayerFlushError) as raised:
        tl.flush(0.2)
    assert raised.value.result.pending == 1
    # The application's own exception is never replaced by the SDK's.
    with pytest.raises(KeyError), tl.trace():
        raise KeyError("mine")
    with pytest.raises(TruLayerFlushError):  # shutdown flushes: in throw mode it says what was left
        tl.shutdown(0)


def test_constructor_checks_like_the_public_sdk() -> None:
    with pytest.raises(TypeError):
        TruLayerClient(api_key="k")
    with pytest.raises(ValueError):
        TruLayerClient(api_key="k", project_name="p", sample_rate=1.5)
    with pytest.raises(ValueError):
        TruLayerClient(api_key="k", project_name="p", on_ingest_failure="ignore")  # type: ignore[arg-type]
    with pytest.warns(DeprecationWarning):
        legacy = TruLayerClient(api_key="k", project_id="p", endpoint=DOWN)
    assert legacy.project_name == "p"
    legacy.shutdown(0)


def test_feedback_on_a_trace_not_stored_yet_is_retried() -> None:
    with fake_api() as (api, url):
        answers = iter([(404, {"code": "not_found"}, {})] * 2)
        api.answer = lambda path, body: next(answers, (201, {}, {})) if path == "/v1/feedback" else (201, {}, {})
        tl = client(url)
        tl.feedback("tr-1", "bad")
        result = tl.flush(30)
        assert (result.sent, result.dropped) == (1, 0)
        assert [p for p, _ in api.requests] == ["/v1/feedback"] * 3
        # A trace that never appears: the feedback is dropped as rejected after a few tries.
        api.answer = lambda path, body: (404, {"code": "not_found"}, {})
        tl.feedback("tr-unknown", "bad")
        result = tl.flush(120)
        assert (result.sent, result.dropped, tl.stats().rejected) == (0, 1, 1)
        tl.shutdown(1)
