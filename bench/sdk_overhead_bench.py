"""SDK overhead on the application's thread: the time a recorded trace costs the code that
records it (µs, p50/p99), with the SDK's sender thread running as in an application.

Each measured trace is what an instrumented request typically records: a trace with input,
output, metadata and two spans (a retrieval span and an LLM span with model and tokens). The
same loop with the SDK calls removed is measured too and subtracted (the loop's own cost).
Measured twice: sending to a running stack (BENCH_URL, ``make up``; skipped without a key) and
with the API unreachable (the buffer full, dropping the oldest: the SLA's degraded mode).

Environment: BENCH_URL (default http://127.0.0.1:8080), BENCH_KEY (default: the key in
.trulayer/bootstrap.json), BENCH_SDK_TRACES (20000).
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

from ingest_bench import REPO, URL  # a sibling script (bench/ is on the path)
from trulayer_sdk import TruLayerClient

TRACES = int(os.environ.get("BENCH_SDK_TRACES", "20000"))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def record(client: TruLayerClient) -> None:
    with client.trace("support-answer", session_id="s-1", metadata={"user": "u1"}) as trace:
        trace.set_input("How do I reset my password?")
        with trace.span("search", span_type="retrieval") as span:
            span.set_output({"hits": 3})
        with trace.span("generate", span_type="llm") as span:
            span.set_model("gpt-4o-mini")
            span.set_tokens(prompt=120, completion=40)
        trace.set_output("Use the 'forgot password' link.")


def baseline() -> None:
    """The loop without the SDK: what the measurement itself costs."""
    data = {"input": "How do I reset my password?", "output": "Use the 'forgot password' link."}
    data.clear()


def measure(call: Callable[..., None], *args: Any) -> list[float]:
    samples = []
    for _ in range(TRACES // 10):  # warm-up
        call(*args)
    gc.collect()
    for _ in range(TRACES):
        started = time.perf_counter_ns()
        call(*args)
        samples.append((time.perf_counter_ns() - started) / 1000)
    return samples


def run(label: str, client: TruLayerClient) -> None:
    loop = measure(baseline)
    sdk = measure(record, client)
    base50, base99 = percentile(loop, 0.5), percentile(loop, 0.99)
    p50, p99 = percentile(sdk, 0.5) - base50, percentile(sdk, 0.99) - base99
    flushed = client.flush(10)
    stats = client.stats()
    print(
        f"{label}: {p50:.1f} µs p50, {p99:.1f} µs p99 per recorded trace "
        f"(mean {statistics.fmean(sdk):.1f} µs; loop alone {base50:.2f} µs); "
        f"sent {stats.sent}, dropped {stats.dropped}, pending after flush {flushed.pending}"
    )
    client.shutdown(1)


def main() -> None:
    print(
        f"SDK overhead, {TRACES} traces each; {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}"
    )
    key = os.environ.get("BENCH_KEY")
    bootstrap = REPO / ".trulayer" / "bootstrap.json"
    if key is None and bootstrap.exists():
        key = json.loads(bootstrap.read_text())["api_key"]
    if key:
        run(f"sending to {URL}", TruLayerClient(api_key=key, project_name="default", endpoint=URL))
    else:
        print("no running stack (no BENCH_KEY, no .trulayer/bootstrap.json): skipping the sending case")
    run(
        "API unreachable (buffer full, dropping oldest)",
        TruLayerClient(api_key="tl_none", project_name="default", endpoint="http://127.0.0.1:9", max_buffer=1000),
    )


if __name__ == "__main__":
    main()
