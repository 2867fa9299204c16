"""OTLP parts in the worker's pure pieces: the transform routes them, derive() builds the trace."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ingest_worker.rows import TRACE_PARTS, complete_trace_row, to_rows
from ingest_worker.trace_parts import derive, summarize
from trulayer_common.topics import traces

RECEIVED = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)
START = datetime(2026, 3, 7, 11, 59, 0)
END = datetime(2026, 3, 7, 11, 59, 2)


def _record(*sent: dict[str, Any]) -> bytes:
    return traces.encode(
        tenant_id="t1",
        project_id="p1",
        received_at=RECEIVED,
        request_id="r",
        traces=list(sent),  # type: ignore[arg-type]
    )


def test_a_part_gives_span_and_event_rows_and_no_trace_row() -> None:
    part = {
        "id": "tr",
        "project_id": "p1",
        "started_at": RECEIVED,
        "metadata": {"service.name": "svc"},
        "spans": [{"id": "s1", "name": "llm", "prompt_tokens": 3}],
        "events": [{"id": "s1-0", "span_id": "s1", "message": "m"}],
        "otlp": {"root": False},
    }
    rows = to_rows(traces.decode(_record(part, {"id": "plain", "project_id": "p1", "started_at": RECEIVED})), 30)
    assert [t["id"] for t in rows["traces"]] == ["plain"]  # an ordinary trace is unchanged
    (held,) = rows[TRACE_PARTS]
    assert (held["id"], held["tenant_id"], held["retention_days"], held["otlp"]) == ("tr", "t1", 30, {"root": False})
    assert [s["trace_id"] for s in rows["spans"]] == ["tr"] and [e["trace_id"] for e in rows["events"]] == ["tr"]


def _summary(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "derived_at": datetime(2026, 3, 7, 12, 0, 1),
        "n_spans": 3,
        "sum_prompt": 30,
        "sum_completion": 7,
        "sum_cost": 0.5,
        "n_costed": 2,
        "first_start": START,
        "last_end": END,
        "roots": 0,
        "root_name": "",
        "root_start": None,
        "root_end": None,
        "root_latency": None,
        "root_error": None,
        "root_model": "",
        "root_input": "",
        "root_output": "",
        "first_name": "llm 0",
        "first_error": "boom",
        "llm_model": "m-1",
        "llm_input": '[{"role":"user"}]',
        "llm_output": "answer",
        "session_id": "",
        "conversation_id": "conv-1",
    }
    return {**base, **kw}


PART = {"id": "tr", "project_id": "p1", "started_at": "2026-03-07T11:59:00Z", "metadata": {"service.name": "svc"}}


def test_placeholder_without_root() -> None:
    trace = derive(PART, _summary())
    assert (trace["name"], trace["started_at"], trace["ended_at"]) == ("llm 0", START, END)
    assert trace["latency_ms"] == 2000.0
    assert (trace["error"], trace["model"], trace["input"], trace["output"]) == (
        "boom",
        "m-1",
        '[{"role":"user"}]',
        "answer",
    )
    assert (trace["prompt_tokens"], trace["completion_tokens"], trace["cost"]) == (30, 7, 0.5)
    assert trace["session_id"] == "conv-1" and trace["metadata"] == {"service.name": "svc"}


def test_root_wins_and_totals_stay_over_every_span() -> None:
    root_start = datetime(2026, 3, 7, 11, 58, 59)
    trace = derive(
        PART,
        _summary(
            roots=1,
            root_name="handle",
            root_start=root_start,
            root_end=END,
            root_latency=3000.0,
            root_error=None,
            root_output="final",
            n_costed=0,
        ),
    )
    assert (trace["name"], trace["started_at"], trace["latency_ms"]) == ("handle", root_start, 3000.0)
    assert trace["error"] is None  # a child's error does not fail a trace whose root succeeded
    assert (trace["model"], trace["input"], trace["output"]) == ("m-1", '[{"role":"user"}]', "final")
    assert trace["cost"] is None and trace["prompt_tokens"] == 30
    row = complete_trace_row(trace, "t1", "2026-03-07T12:00:01Z", 30, 3)
    assert (row["status"], row["total_tokens"], row["span_count"], row["tenant_id"]) == ("success", 37, 3, "t1")


def test_only_parts_holding_their_root_count_for_the_alerter() -> None:
    sent = [
        {"id": "a", "project_id": "p1", "started_at": RECEIVED, "otlp": {"root": False}},
        {"id": "a", "project_id": "p1", "started_at": RECEIVED, "otlp": {"root": True}, "latency_ms": 5},
        {"id": "b", "project_id": "p1", "started_at": RECEIVED},
    ]
    header = traces.decode_points(traces.encode_points("t1", RECEIVED, sent))  # type: ignore[arg-type]
    assert [p[2] for p in header["groups"]["p1"]] == [5, None]
    assert traces.points_of(traces.decode(_record(*sent))) == header


def test_summarize_in_memory_gives_the_columns_the_query_gives() -> None:
    spans = [
        {
            "id": "c1",
            "parent_span_id": "r",
            "name": "llm",
            "type": "llm",
            "model": "m-1",
            "input": [{"q": 1}],
            "output": "first",
            "prompt_tokens": 5,
            "completion_tokens": 1,
            "cost": 0.25,
            "error": "flaky",
            "start_time": "2026-03-07T11:59:01Z",
            "end_time": "2026-03-07T11:59:02Z",
            "metadata": '{"session.id": "s-7"}',
        },
        {
            "id": "c2",
            "parent_span_id": "r",
            "name": "llm2",
            "type": "llm",
            "model": "m-2",
            "output": "last",
            "prompt_tokens": 7,
            "completion_tokens": 2,
            "start_time": "2026-03-07T11:59:02Z",
            "end_time": "2026-03-07T11:59:03Z",
            "metadata": {},
        },
    ]
    placeholder = summarize([*spans, dict(spans[0])])  # the same span twice counts once
    assert (placeholder["n_spans"], placeholder["sum_prompt"], placeholder["sum_completion"]) == (2, 12, 3)
    assert (placeholder["roots"], placeholder["first_name"], placeholder["first_error"]) == (0, "llm", "flaky")
    assert (placeholder["llm_model"], placeholder["llm_input"], placeholder["llm_output"]) == (
        "m-1",
        [{"q": 1}],
        "last",
    )
    assert (placeholder["sum_cost"], placeholder["n_costed"], placeholder["session_id"]) == (0.25, 1, "s-7")
    trace = derive(PART, placeholder)
    assert (trace["name"], trace["error"], trace["latency_ms"], trace["session_id"]) == ("llm", "flaky", 2000.0, "s-7")

    root = {
        "id": "r",
        "parent_span_id": None,
        "name": "handle",
        "type": "other",
        "latency_ms": 4000.0,
        "start_time": "2026-03-07T11:59:00Z",
        "end_time": "2026-03-07T11:59:04Z",
        "metadata": "{}",
    }
    whole = derive(PART, summarize([*spans, root]))
    assert (whole["name"], whole["error"], whole["latency_ms"]) == ("handle", None, 4000.0)
    assert whole["started_at"] == datetime(2026, 3, 7, 11, 59, 0)
    assert (whole["model"], whole["input"], whole["output"]) == ("m-1", [{"q": 1}], "last")
