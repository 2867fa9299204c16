"""OTLP ingest benchmark against a running local stack (``make up``), from a separate process.

Several clients post OTLP/HTTP protobuf exports to ``POST /v1/otlp/traces`` for
BENCH_OTLP_SECONDS (after a warm-up of BENCH_OTLP_WARMUP_SECONDS): each export holds
BENCH_OTLP_TRACES traces of 5 spans (an agent root, a GenAI chat span with tokens and messages,
a tool span, a retrieval span, an HTTP client span), fresh ids every time, the shape the
OpenTelemetry SDK's BatchSpanProcessor sends (512 spans by default). Prints:

1. spans/s (and traces/s) **accepted**: 200 answers, minus rejected spans;
2. spans/s **stored**: accepted spans over the time until every accepted trace is queryable with
   its derived totals: ``GET /v1/metrics?model=<this run's model>`` must count every trace and
   ``total_tokens`` must equal traces × tokens per trace (every GenAI span stored and summed
   into its trace), and a sample of traces read back must hold all 5 spans.

Environment: BENCH_URL (default http://127.0.0.1:8080), BENCH_KEY (default: the key in
.trulayer/bootstrap.json), BENCH_OTLP_SECONDS (30), BENCH_OTLP_WARMUP_SECONDS (5),
BENCH_OTLP_CLIENTS (4), BENCH_OTLP_TRACES (100 per export).
"""

from __future__ import annotations

import asyncio
import os
import platform
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from ingest_bench import URL, api_key  # a sibling script (bench/ is on the path)

SECONDS = float(os.environ.get("BENCH_OTLP_SECONDS", "30"))
WARMUP_SECONDS = float(os.environ.get("BENCH_OTLP_WARMUP_SECONDS", "5"))
CLIENTS = int(os.environ.get("BENCH_OTLP_CLIENTS", "4"))
TRACES = int(os.environ.get("BENCH_OTLP_TRACES", "100"))
SPANS_PER_TRACE = 5
PROMPT_TOKENS, COMPLETION_TOKENS = 120, 40


def _kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


INPUT = '[{"role":"user","parts":[{"type":"text","content":"Summarise the ticket"}]}]'
OUTPUT = '[{"role":"assistant","parts":[{"type":"text","content":"Locked out."}]}]'


def _span(
    trace_id: bytes, start: int, ids: tuple[bytes, bytes], name: str, at_ms: tuple[int, int], kind: int, **attrs: Any
) -> Span:
    span_id, parent = ids
    offset_ms, ms = at_ms
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        kind=kind,
        start_time_unix_nano=start + offset_ms * 1_000_000,
        end_time_unix_nano=start + (offset_ms + ms) * 1_000_000,
        attributes=[_kv(k, v) for k, v in attrs.items()],
    )


def export_body(model: str, rng: random.Random) -> bytes:
    """One export: TRACES traces of 5 spans, new ids, times around now; every 50th fails."""
    start = time.time_ns() - 2_000_000_000
    spans: list[Span] = []
    for i in range(TRACES):
        trace_id = rng.randbytes(16)
        root, chat, tool, retrieve, http = (rng.randbytes(8) for _ in range(SPANS_PER_TRACE))
        agent = _span(trace_id, start, (root, b""), "agent", (0, 900), 2, **{"session.id": f"s{i % 100}"})
        if i % 50 == 0:
            agent.status.code = Status.STATUS_CODE_ERROR
            agent.status.message = "upstream timeout"
        llm = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": model,
            "gen_ai.usage.input_tokens": PROMPT_TOKENS,
            "gen_ai.usage.output_tokens": COMPLETION_TOKENS,
            "gen_ai.input.messages": INPUT,
            "gen_ai.output.messages": OUTPUT,
        }
        spans += [
            agent,
            _span(trace_id, start, (chat, root), f"chat {model}", (100, 600), 3, **llm),
            _span(
                trace_id,
                start,
                (tool, root),
                "execute_tool lookup",
                (720, 50),
                1,
                **{"gen_ai.operation.name": "execute_tool"},
            ),
            _span(
                trace_id,
                start,
                (retrieve, root),
                "retrieve docs",
                (20, 60),
                1,
                **{"gen_ai.operation.name": "retrieval"},
            ),
            _span(trace_id, start, (http, chat), "POST", (110, 580), 3, **{"http.request.method": "POST"}),
        ]
    resource = Resource(attributes=[_kv("service.name", "otlp-bench"), _kv("deployment.environment", "bench")])
    scope = ScopeSpans(scope=InstrumentationScope(name="bench", version="1"), spans=spans)
    export = ExportTraceServiceRequest(resource_spans=[ResourceSpans(resource=resource, scope_spans=[scope])])
    return bytes(export.SerializeToString())


class Bench:
    def __init__(self, session: aiohttp.ClientSession, key: str) -> None:
        self.session = session
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-protobuf"}

    async def client(self, model: str, deadline: float, counts: dict[str, int], seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            body = export_body(model, rng)
            async with self.session.post(f"{URL}/v1/otlp/traces", data=body, headers=self.headers) as resp:
                answer = await resp.read()
                if resp.status != 200:
                    counts["errors"] += 1
                    await asyncio.sleep(0.05)
                    continue
            rejected = ExportTraceServiceResponse.FromString(answer).partial_success.rejected_spans
            counts["spans"] += TRACES * SPANS_PER_TRACE - rejected
            counts["traces"] += TRACES
            counts["rejected"] += rejected

    async def run(self, model: str, seconds: float) -> dict[str, int]:
        counts = {"spans": 0, "traces": 0, "rejected": 0, "errors": 0}
        deadline = time.monotonic() + seconds
        # Fresh ids every run: a re-sent id would be answered as a duplicate (and not stored again).
        seeds = [random.SystemRandom().getrandbits(64) for _ in range(CLIENTS)]
        await asyncio.gather(*(self.client(model, deadline, counts, seed) for seed in seeds))
        return counts

    async def stored(self, model: str, since: datetime) -> tuple[int, int]:
        params = {"model": model, "from": since.isoformat(), "to": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}
        async with self.session.get(f"{URL}/v1/metrics", params=params, headers=self.headers) as resp:
            body = await resp.json()
        return int(body["total_traces"]), int(body["total_tokens"])

    async def sample(self, model: str) -> list[int]:
        async with self.session.get(
            f"{URL}/v1/traces", params={"model": model, "limit": "20"}, headers=self.headers
        ) as resp:
            traces = (await resp.json())["traces"]
        counts = []
        for trace in traces:
            async with self.session.get(f"{URL}/v1/traces/{trace['id']}", headers=self.headers) as resp:
                counts.append(len((await resp.json())["spans"]))
        return counts


async def main() -> None:
    key = api_key()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        bench = Bench(session, key)
        print(f"OTLP bench against {URL}: {CLIENTS} clients, {TRACES} traces × {SPANS_PER_TRACE} spans per export")
        if WARMUP_SECONDS > 0:
            await bench.run(f"otlp-warmup-{uuid.uuid4().hex[:6]}", WARMUP_SECONDS)
        model = f"otlp-bench-{uuid.uuid4().hex[:8]}"
        since = datetime.now(UTC) - timedelta(minutes=5)
        started = time.monotonic()
        counts = await bench.run(model, SECONDS)
        sent_for = time.monotonic() - started
        expected_tokens = counts["traces"] * (PROMPT_TOKENS + COMPLETION_TOKENS)
        stored_traces = stored_tokens = 0
        wait_until = time.monotonic() + 300
        while time.monotonic() < wait_until:
            stored_traces, stored_tokens = await bench.stored(model, since)
            if stored_traces >= counts["traces"] and stored_tokens >= expected_tokens:
                break
            await asyncio.sleep(0.5)
        stored_after = time.monotonic() - started
        sample = await bench.sample(model)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(
        f"accepted: {counts['spans'] / sent_for:,.0f} spans/s ({counts['traces'] / sent_for:,.0f} traces/s) "
        f"over {sent_for:.0f} s; rejected spans {counts['rejected']}, non-200 answers {counts['errors']}"
    )
    print(
        f"stored:   {counts['spans'] / stored_after:,.0f} spans/s end to end "
        f"(all queryable after {stored_after:.1f} s); "
        f"traces {stored_traces}/{counts['traces']}, tokens {stored_tokens}/{expected_tokens}, "
        f"lost traces {counts['traces'] - min(stored_traces, counts['traces'])}; "
        f"sampled traces' span counts {sorted(set(sample))}"
    )


if __name__ == "__main__":
    asyncio.run(main())
