"""The dead-letter writer's transform: every record of trulayer.dlq becomes a row, whatever it
holds (a record this writer refused would go back to the topic it reads)."""

from __future__ import annotations

from typing import Any

import orjson
from aiokafka.structs import ConsumerRecord

from ingest_worker.dead_letter_rows import dead_letter_rows
from trulayer_common import live
from trulayer_common.topics import dlq


def record(value: bytes | None, headers: list[tuple[str, bytes]], timestamp: int = 1_764_468_000_000) -> Any:
    return ConsumerRecord("trulayer.dlq", 0, 42, timestamp, 0, None, value, None, len(value or b""), -1, headers)


def test_a_dead_letter_of_a_tenant() -> None:
    headers = dlq.encode_headers(dlq.DeadLetter("refused by ClickHouse: bad", "trulayer.traces", 3, 1234))
    value = orjson.dumps({"schema_version": 1, "tenant_id": "acme", "project_id": "p1", "payload": {}})
    (row,) = dead_letter_rows(record(value, headers))["dead_letters"]
    assert row["tenant_id"] == "acme" and row["project_id"] == "p1"
    assert (row["source_topic"], row["source_partition"], row["source_offset"]) == ("trulayer.traces", 3, 1234)
    assert row["error"] == "refused by ClickHouse: bad"
    assert row["dead_at"].startswith("2025-11-30T")


def test_unreadable_records_are_kept_not_refused() -> None:
    for value in (b"\xff not json", b"[1, 2]", None, orjson.dumps({"tenant_id": 7})):
        (row,) = dead_letter_rows(record(value, []))["dead_letters"]
        assert row["tenant_id"] == "" and row["source_topic"] == "trulayer.dlq" and row["source_offset"] == 42
        assert row["error"].startswith("(no dead-letter headers")


def test_live_frames_round_trip_and_bad_messages_are_skipped() -> None:
    row = {
        "tenant_id": "t",
        "project_id": "p",
        "id": "tr-1",
        "name": "",
        "model": "gpt-4o",
        "status": "success",
        "latency_ms": 12.5,
        "created_at": "2026-11-30T00:00:00.000Z",
        "input": "secret",
    }
    frame = live.frame(row)
    assert frame == {
        "trace_id": "tr-1",
        "project_id": "p",
        "name": None,
        "model": "gpt-4o",
        "status": "success",
        "latency_ms": 12.5,
        "created_at": "2026-11-30T00:00:00.000Z",
    }
    assert live.decode(live.encode([frame])) == [frame]
    assert live.decode(b"nope") == [] and live.decode(b"{}") == [] and live.decode(b'[{"x": 1}]') == []
    assert live.tenant_of(live.channel("acme")) == "acme"
