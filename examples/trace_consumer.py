"""An internal team's consumer of ``trulayer.traces`` (see docs/topics.md).

It joins a consumer group of its *own* (never one of the platform's), so it gets its own
offsets and partitions and cannot slow down or skip anything for the ingest-worker. It decodes
with the platform's topic module (other languages: docs/topics/traces.json), commits after
handling each fetch (at-least-once: be idempotent on the trace id), and needs read access only.

    .venv/bin/python examples/trace_consumer.py --bootstrap 127.0.0.1:9092 --group analytics-traces
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer

from trulayer_common.topics import InvalidRecordError, traces

TraceHandler = Callable[[str, dict[str, Any]], None]


def print_trace(tenant_id: str, trace: dict[str, Any]) -> None:
    print(f"{tenant_id} {trace['project_id']} {trace['id']} model={trace.get('model')} ms={trace.get('latency_ms')}")


async def consume(
    bootstrap: str, group_id: str, on_trace: TraceHandler = print_trace, *, earliest: bool = False
) -> None:
    """Hand every trace of every record to ``on_trace`` until cancelled."""
    consumer = AIOKafkaConsumer(
        traces.TOPIC,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if earliest else "latest",
    )
    await consumer.start()
    try:
        while True:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    try:
                        envelope = traces.decode(record.value)
                    except InvalidRecordError as exc:  # not ours to fix: the platform dead-letters it
                        print(f"skipped {record.partition}/{record.offset}: {exc}")
                        continue
                    for trace in envelope["payload"]["traces"]:
                        on_trace(envelope["tenant_id"], dict(trace))
            await consumer.commit()
    finally:
        await consumer.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--group", required=True, help="your team's own consumer group id")
    parser.add_argument("--from-beginning", action="store_true", help="a new group starts at the oldest record")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(consume(args.bootstrap, args.group, earliest=args.from_beginning))
