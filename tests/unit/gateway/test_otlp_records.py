"""How an export's parts become Kafka records: by partition of the trace id, within the budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.otlp import _records
from gateway.otlp_mapping import map_export
from gateway.otlp_wire import OtlpSpan

RECEIVED = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
T0 = int((RECEIVED - timedelta(seconds=5)).timestamp()) * 10**9


def spans(trace: str, count: int, text: str = "") -> list[OtlpSpan]:
    return [
        OtlpSpan(
            trace_id=trace * 16,
            span_id=f"{i + 1:016x}",
            name="s",
            start_unix_nano=T0,
            end_unix_nano=T0 + 10**6,
            attributes={"input.value": text} if text else {},
            resource={"trulayer.project": "p" if i % 2 else "q"},
        )
        for i in range(count)
    ]


def test_parts_group_by_the_partition_of_their_trace() -> None:
    mapped = map_export(spans("aa", 3) + spans("bb", 2) + spans("cc", 1), RECEIVED)
    partition = {"aa" * 16: 0, "bb" * 16: 1, "cc" * 16: 0}
    groups = _records(mapped, 10**6, lambda trace_id: partition[trace_id])
    assert [sorted({p["id"][:2] for p in g.parts}) for g in groups] == [["aa", "cc"], ["bb"]]
    assert [g.spans for g in groups] == [4, 2] and sum(len(g.keys) for g in groups) == len(mapped.parts)


def test_a_group_stays_within_the_record_budget_and_an_oversized_part_is_rejected() -> None:
    mapped = map_export(spans("aa", 1, "x" * 3000) + spans("bb", 1, "y" * 3000) + spans("cc", 1, "z" * 9000), RECEIVED)
    groups = _records(mapped, 8000, lambda trace_id: 0)  # each part ~6.3 kB (text twice)
    assert [[p["id"][:2] for p in g.parts] for g in groups] == [["aa"], ["bb"]]
    assert mapped.rejected == 1 and "too large for one record" in mapped.error_message()
