from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from gateway.ingest import new_id, prepare
from trulayer_common.schemas import TRACE

RECEIVED = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_new_ids_are_random_version_4_uuids():
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    for text in list(ids)[:50]:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)


def test_prepare_completes_ids_project_and_times():
    trace = TRACE.validate_python(
        {"ended_at": "2026-11-22T11:00:01Z", "latency_ms": 1000, "spans": [{"name": "s"}], "events": [{"message": "m"}]}
    )
    prepare(trace, "p1", "my-app", RECEIVED)
    assert uuid.UUID(trace["id"]) and uuid.UUID(trace["spans"][0]["id"]) and uuid.UUID(trace["events"][0]["id"])
    assert trace["project_id"] == "p1"
    assert trace["metadata"] == {"project_name": "my-app"}
    assert trace["started_at"] == datetime(2026, 11, 22, 11, 0, tzinfo=UTC)


def test_prepare_keeps_what_the_client_sent_and_derives_latency():
    started = RECEIVED - timedelta(seconds=2)
    trace = TRACE.validate_python(
        {"id": "t1", "started_at": started, "ended_at": RECEIVED, "status": "rate limited", "project_id": "p1"}
    )
    prepare(trace, "p1", "p1", RECEIVED)
    assert (trace["id"], trace["started_at"], trace["latency_ms"]) == ("t1", started, 2000.0)
    assert trace["error"] == "rate limited" and "status" not in trace
    assert "metadata" not in trace  # the project was named by its id: nothing to remember
    bare = TRACE.validate_python({})
    prepare(bare, "p1", None, RECEIVED)
    assert bare["started_at"] == RECEIVED and "latency_ms" not in bare


def test_new_ids_do_not_repeat_across_refills_or_a_fork():
    import os

    seen = {new_id() for _ in range(3 * 512 + 7)}
    assert len(seen) == 3 * 512 + 7
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first id must not be the parent's next buffered one
        os.write(write, new_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert child != new_id() and child not in seen


def test_prepare_mixes_times_with_and_without_offset_as_utc():
    trace = TRACE.validate_python({"started_at": "2026-11-22T11:00:00", "ended_at": "2026-11-22T12:00:01+01:00"})
    prepare(trace, "p1", None, RECEIVED)
    assert trace["latency_ms"] == 1000.0
