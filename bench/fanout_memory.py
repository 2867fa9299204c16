"""Memory the ingest-worker needs for one maximal ingest request, before and after the fan-out bounds.

The worker holds, per record: the record's bytes, the parsed dicts, the rows completed from them,
and the JSON of each insert. This builds the largest record each regime lets through a 5 MiB
body (as the gateway would produce it: ids filled in), then measures, in a fresh process each,
the peak resident memory of decoding the record and ``to_rows`` plus the insert serialisation (``orjson.dumps`` of each
table's rows, as ``ClickHouse.insert_json_rows`` does):

* **before** (10,000 spans and 10,000 events per trace, no bound per request): 29 traces ×
  10,000 minimal spans, 3.6 MiB of body, the largest record under the broker's 16 MiB: 290,029 rows;
* **after** (1,000 spans and events per trace, 10,000 per request): 100 traces × 100 spans, each
  span padded so that the body is still ~5 MiB (the worst case left: few rows, fat ones).

Run: ``.venv/bin/python bench/fanout_memory.py`` (prints one line per regime).
"""

from __future__ import annotations

import resource
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import orjson

BODY_LIMIT = 5 * 1024 * 1024


def record(traces: int, spans_per_trace: int, span_input: str) -> bytes:
    from trulayer_common.topics.traces import encode

    now = datetime.now(UTC)
    items = [
        {
            "id": str(uuid.uuid4()),
            "project_id": "p",
            "name": "t",
            "started_at": now,
            "spans": [
                {"id": str(uuid.uuid4()), "name": "s", **({"input": span_input} if span_input else {})}
                for _ in range(spans_per_trace)
            ],
        }
        for _ in range(traces)
    ]
    return encode(
        tenant_id="t",
        project_id="p",
        received_at=now,
        request_id="r",
        traces=items,  # type: ignore[arg-type]
    )


def body_bytes(traces: int, spans_per_trace: int, span_input: str) -> int:
    span = {"name": "s", **({"input": span_input} if span_input else {})}
    return len(orjson.dumps({"traces": [{"name": "t", "spans": [span] * spans_per_trace}] * traces}))


def measure(regime: str) -> None:
    from ingest_worker.rows import to_rows
    from trulayer_common.topics.traces import decode

    value = record(29, 10_000, "") if regime == "before" else record(100, 100, "x" * 480)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rows = to_rows(decode(value), 30)
    dumped = [orjson.dumps(table) for table in rows.values()]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    count = sum(len(table) for table in rows.values())
    print(
        f"{regime:6}  record {len(value) / 2**20:6.1f} MiB  rows {count:>7,}"
        f"  insert JSON {sum(map(len, dumped)) / 2**20:6.1f} MiB  worker peak +{(peak - base) / 1024:6.0f} MiB",
        flush=True,
    )


def main() -> None:
    if len(sys.argv) == 2:
        measure(sys.argv[1])
        return
    before, after = body_bytes(29, 10_000, "") / 2**20, body_bytes(100, 100, "x" * 480) / 2**20
    print(f"bodies: before {before:.1f} MiB, after {after:.1f} MiB")
    for regime in ("before", "after"):
        subprocess.run([sys.executable, __file__, regime], check=True)


if __name__ == "__main__":
    main()
