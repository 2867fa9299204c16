"""The pure OTel → trace-part mapping, on plain spans (no wire format, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.otlp_mapping import MAX_EVENTS_PER_PART, MAX_SPANS_PER_PART, map_export
from gateway.otlp_wire import OtlpEvent, OtlpSpan

RECEIVED = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
T0 = int((RECEIVED - timedelta(seconds=10)).timestamp()) * 10**9
TRACE = "ab" * 16


def span(span_id: int, parent: int | None = None, start: int = 0, duration_ms: int = 100, **kw: Any) -> OtlpSpan:
    return OtlpSpan(
        trace_id=kw.pop("trace_id", TRACE),
        span_id=f"{span_id:016x}",
        parent_span_id=f"{parent:016x}" if parent is not None else "",
        name=kw.pop("name", f"span-{span_id}"),
        start_unix_nano=T0 + start * 10**6,
        end_unix_nano=T0 + (start + duration_ms) * 10**6,
        resource=kw.pop("resource", {"service.name": "svc"}),
        **kw,
    )


def one_part(*spans: OtlpSpan) -> dict[str, Any]:
    mapped = map_export(list(spans), RECEIVED)
    assert mapped.rejected == 0, mapped.examples
    (part,) = mapped.parts
    return dict(part)


def test_root_part_takes_the_roots_fields_and_keeps_parent_links() -> None:
    llm = span(
        2,
        parent=1,
        start=10,
        duration_ms=50,
        name="chat gpt-4o",
        kind=3,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.input_tokens": 12,
            "gen_ai.usage.output_tokens": 4.0,
            "gen_ai.usage.cost": 0.25,
            "gen_ai.input.messages": '[{"role": "user", "content": "hi"}]',
            "gen_ai.output.messages": [{"role": "assistant", "content": "yo"}],
        },
        scope_name="openai-instr",
        scope_version="0.1",
        resource={"service.name": "svc", "trulayer.project": "shop"},
    )
    root = span(
        1, name="agent", attributes={"session.id": "s-1"}, resource={"service.name": "svc", "trulayer.project": "shop"}
    )
    part = one_part(llm, root)
    assert part["id"] == TRACE and part["project_id"] == "shop" and part["otlp"] == {"root": True}
    assert (part["name"], part["latency_ms"], part["session_id"]) == ("agent", 100.0, "s-1")
    assert part["started_at"] == datetime.fromtimestamp(T0 / 1e9, UTC)
    assert part["metadata"] == {"service.name": "svc"}  # the project attribute is the project, not metadata
    assert (part["model"], part["prompt_tokens"], part["completion_tokens"], part["cost"]) == (
        "gpt-4o-2024-08-06",
        12,
        4,
        0.25,
    )
    assert part["input"] == [{"role": "user", "content": "hi"}]
    assert part["output"] == [{"role": "assistant", "content": "yo"}]
    root_span, llm_span = part["spans"]  # by start time
    assert root_span["parent_span_id"] is None and llm_span["parent_span_id"] == root_span["id"]
    assert (llm_span["type"], root_span["type"]) == ("llm", "other")
    assert llm_span["latency_ms"] == 50.0
    assert llm_span["metadata"]["otel.kind"] == "client"
    assert llm_span["metadata"]["otel.scope.name"] == "openai-instr"
    assert "gen_ai.input.messages" not in llm_span["metadata"]  # content is input/output, not metadata
    assert llm_span["metadata"]["gen_ai.provider.name"] == "openai"


def test_old_names_content_events_and_indexed_prompts() -> None:
    old = span(
        1,
        attributes={"gen_ai.system": "openai", "gen_ai.request.model": "m", "gen_ai.usage.prompt_tokens": 3},
        events=[
            OtlpEvent("gen_ai.content.prompt", T0, {"gen_ai.prompt": "question"}),
            OtlpEvent("gen_ai.content.completion", T0, {"gen_ai.completion": "answer"}),
            OtlpEvent("retry", T0 + 10**6, {"attempt": 2}),
        ],
    )
    part = one_part(old)
    (mapped,) = part["spans"]
    assert (mapped["type"], mapped["model"], mapped["prompt_tokens"]) == ("llm", "m", 3)
    assert (mapped["input"], mapped["output"]) == ("question", "answer")
    (event,) = part["events"]  # the content events were consumed
    assert (event["message"], event["metadata"], event["id"]) == ("retry", {"attempt": 2}, f"{1:016x}-2")

    indexed = span(
        2,
        trace_id="cd" * 16,
        attributes={
            "gen_ai.prompt.1.content": "second",
            "gen_ai.prompt.0.role": "system",
            "gen_ai.prompt.0.content": "first",
            "gen_ai.prompt.1.role": "user",
            "gen_ai.completion.0.content": "done",
        },
    )
    (mapped,) = one_part(indexed)["spans"]
    assert mapped["input"] == [{"role": "system", "content": "first"}, {"role": "user", "content": "second"}]
    assert mapped["output"] == [{"content": "done"}]
    assert not any(k.startswith("gen_ai.prompt") for k in mapped["metadata"])


@pytest.mark.parametrize(
    ("status", "message", "attributes", "events", "error"),
    [
        (0, "", {}, [], None),
        (1, "", {"error.type": "Timeout"}, [], None),  # status OK wins
        (0, "", {"error.type": "429"}, [], "429"),  # error.type alone marks an error
        (2, "", {}, [], "error"),
        (2, "upstream failed", {"error.type": "HTTPError"}, [], "HTTPError: upstream failed"),
        (2, "HTTPError: 500", {"error.type": "HTTPError"}, [], "HTTPError: 500"),
        (
            2,
            "",
            {},
            [OtlpEvent("exception", T0, {"exception.type": "ValueError", "exception.message": "bad"})],
            "ValueError: bad",
        ),
    ],
)
def test_error_from_status_error_type_and_exception(
    status: int, message: str, attributes: dict[str, Any], events: list[OtlpEvent], error: str | None
) -> None:
    part = one_part(span(1, status_code=status, status_message=message, attributes=attributes, events=events))
    assert part["spans"][0]["error"] == error and part["error"] == error
    if events:
        assert part["events"][0]["level"] == "error"


@pytest.mark.parametrize(
    ("attributes", "kind"),
    [
        ({"gen_ai.operation.name": "execute_tool"}, "tool"),
        ({"gen_ai.operation.name": "embeddings"}, "llm"),
        ({"gen_ai.operation.name": "retrieval"}, "retrieval"),
        ({"gen_ai.system": "x", "gen_ai.request.model": "m"}, "llm"),
        ({"gen_ai.request.model": "m"}, "other"),  # a model alone is not a GenAI call
        ({"trulayer.span.type": "retrieval", "gen_ai.operation.name": "chat"}, "retrieval"),
        ({"llm.model_name": "m", "input.value": "q", "output.value": "a"}, "llm"),  # OpenInference
    ],
)
def test_span_types(attributes: dict[str, Any], kind: str) -> None:
    assert one_part(span(1, attributes=attributes))["spans"][0]["type"] == kind


def test_child_parts_before_their_root_are_placeholders() -> None:
    """Without the root the part spans its spans and takes the first error; a later export
    with the root is a part of the same trace, with a different dedup key."""
    first = map_export(
        [span(3, parent=1, start=5, status_code=2, status_message="x"), span(2, parent=1, start=20)], RECEIVED
    )
    (part,) = first.parts
    assert part["otlp"] == {"root": False}
    assert (part["name"], part["latency_ms"], part["error"]) == ("span-3", 115.0, "x")
    assert "project_id" not in part  # the API key's project, resolved by the gateway
    second = map_export([span(1, duration_ms=500)], RECEIVED)
    assert second.parts[0]["otlp"] == {"root": True}
    assert first.dedup_keys[0] != second.dedup_keys[0]
    # An exporter's retry repeats its key (whatever the order of the spans).
    again = map_export([span(2, parent=1, start=20), span(3, parent=1, start=5)], RECEIVED)
    assert again.dedup_keys == first.dedup_keys


def test_projects_and_traces_are_separate_parts() -> None:
    mapped = map_export(
        [
            span(1, resource={"trulayer.project": "a"}),
            span(2, resource={"trulayer.project": "b"}),
            span(3, trace_id="cd" * 16),
        ],
        RECEIVED,
    )
    assert sorted((p["id"], p.get("project_id")) for p in mapped.parts) == [
        ("ab" * 16, "a"),
        ("ab" * 16, "b"),
        ("cd" * 16, None),
    ]
    assert len(set(mapped.dedup_keys)) == 3


def test_a_large_trace_is_cut_in_parts_within_the_ingest_bounds() -> None:
    spans = [span(i + 1, parent=None if i == 0 else 1, start=i) for i in range(MAX_SPANS_PER_PART + 5)]
    mapped = map_export(spans, RECEIVED)
    assert [len(p["spans"]) for p in mapped.parts] == [MAX_SPANS_PER_PART, 5]
    assert mapped.spans == [MAX_SPANS_PER_PART, 5]
    assert [p["otlp"]["root"] for p in mapped.parts] == [True, False]

    noisy = [span(i + 1, start=i, events=[OtlpEvent("e", T0, {})] * 600) for i in range(3)]
    parts = map_export(noisy, RECEIVED).parts
    assert [len(p["events"]) for p in parts] == [600, 600, 600]
    too_many = span(9, events=[OtlpEvent("e", T0, {})] * (MAX_EVENTS_PER_PART + 1))
    (part,) = map_export([too_many], RECEIVED).parts
    assert len(part["events"]) == MAX_EVENTS_PER_PART
    assert part["spans"][0]["metadata"]["otel.dropped_events"] == 1


def test_rejected_spans_are_counted_and_named() -> None:
    ancient = span(4)
    ancient.start_unix_nano = int((RECEIVED - timedelta(days=400)).timestamp()) * 10**9
    future = span(5, start=3 * 24 * 3600 * 1000)
    backwards = span(6)
    backwards.end_unix_nano = backwards.start_unix_nano - 1
    unstarted = span(7)
    unstarted.start_unix_nano = 0
    bad_type = span(8)
    bad_type.problem = "kind is not an enum name or number"
    mapped = map_export(
        [
            span(1, trace_id="00" * 16),
            span(0),
            span(2, trace_id="ab" * 8),
            ancient,
            future,
            backwards,
            unstarted,
            bad_type,
            span(9, name="fine"),
        ],
        RECEIVED,
    )
    assert mapped.rejected == 8
    assert [s["name"] for p in mapped.parts for s in p["spans"]] == ["fine"]
    message = mapped.error_message()
    assert message.startswith("8 span(s) rejected: ")
    assert "invalid trace id" in message and "invalid span id" in message and "(and 3 more)" in message
    assert map_export([span(9)], RECEIVED).error_message() == ""


def test_events_keep_within_their_span_and_names_are_bounded() -> None:
    late = OtlpEvent("late", T0 + 10**12, {})
    part = one_part(span(1, name="x" * 5000, events=[late]))
    assert len(part["spans"][0]["name"]) == 1024
    assert part["events"][0]["timestamp"] == part["spans"][0]["end_time"]
    tokens = one_part(span(2, trace_id="cd" * 16, attributes={"gen_ai.usage.input_tokens": -1, "trulayer.cost": "9"}))
    assert tokens["spans"][0]["prompt_tokens"] is None and tokens["spans"][0]["cost"] is None
