"""OTLP/HTTP ingest with the real OpenTelemetry Python SDK and its OTLP/HTTP exporters (protobuf
and JSON) against the running gateway, stored by the worker and read back through the API.

Spans are recorded with the SDK into memory, then handed to the real exporters in the batches a
test chooses (so "child first, root later" is exact); exporters are blocking, so they run in a
thread while the gateway serves on the test's loop.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter as JsonSpanExporter
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as ProtobufSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanKind, Status, StatusCode, set_span_in_context

from gateway.resources import config_state
from tests.integration.conftest import Harness, Tenant, eventually
from tests.integration.test_limits import _with_limits
from trulayer_common.schemas.otlp import OtlpExportResponse
from trulayer_common.schemas.responses import ErrorBody, MetricsResponse, TraceDetail, TraceList

PATH = "/v1/otlp/traces"
OUTPUT_MESSAGES = '[{"role": "assistant", "parts": [{"type": "text", "content": "y"}]}]'


def record(resource: dict[str, Any], build: Callable[[Any], None]) -> list[ReadableSpan]:
    """Spans recorded by the real SDK (in the order they ended)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create(resource))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    build(provider.get_tracer("tests.otlp", "1.0"))
    provider.shutdown()
    return list(memory.get_finished_spans())


async def export(exporter: Any, spans: Sequence[ReadableSpan]) -> SpanExportResult:
    return await asyncio.to_thread(exporter.export, spans)


def protobuf_exporter(harness: Harness, tenant: Tenant, **kw: Any) -> ProtobufSpanExporter:
    return ProtobufSpanExporter(endpoint=harness.gateway_url + PATH, headers={"x-api-key": tenant.key}, **kw)


def json_exporter(harness: Harness, tenant: Tenant) -> JsonSpanExporter:
    return JsonSpanExporter(endpoint=harness.gateway_url + PATH, headers={"Authorization": f"Bearer {tenant.key}"})


async def stored_trace(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant, trace_id: str) -> Any:
    async with http.get(f"{harness.gateway_url}/v1/traces/{trace_id}", headers=tenant.headers) as resp:
        return TraceDetail.model_validate(await resp.json()).model_dump() if resp.status == 200 else None


def hex_id(value: int, size: int) -> str:
    return f"{value:0{size * 2}x}"


async def test_protobuf_export_maps_genai_spans_events_and_resource(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant
) -> None:
    """New GenAI names, gzip, parent links, events, resource metadata, tokens, cost, session."""

    def build(tracer: Any) -> None:
        with tracer.start_as_current_span("agent run", attributes={"session.id": "sess-9"}) as root:
            root.add_event("plan ready", {"steps": 2})
            with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT) as llm:
                llm.set_attributes(
                    {
                        "gen_ai.operation.name": "chat",
                        "gen_ai.provider.name": "openai",
                        "gen_ai.request.model": "gpt-4o",
                        "gen_ai.response.model": "gpt-4o-2024-08-06",
                        "gen_ai.usage.input_tokens": 12,
                        "gen_ai.usage.output_tokens": 5,
                        "gen_ai.usage.cost": 0.0015,
                        "gen_ai.input.messages": '[{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]',
                        "gen_ai.output.messages": OUTPUT_MESSAGES,
                    }
                )
            with tracer.start_as_current_span("execute_tool search") as tool:
                tool.set_attribute("gen_ai.operation.name", "execute_tool")

    spans = record({"service.name": "checkout", "deployment.environment": "test"}, build)
    trace_id = hex_id(spans[0].context.trace_id, 16)
    assert await export(protobuf_exporter(harness, tenant, compression=Compression.Gzip), spans) == (
        SpanExportResult.SUCCESS
    )
    stored = await eventually(lambda: stored_trace(http, harness, tenant, trace_id))
    assert stored["project_id"] == tenant.project_id  # no trulayer.project: the key's project
    assert stored["name"] == "agent run"
    assert stored["session_id"] == "sess-9"
    assert stored["model"] == "gpt-4o-2024-08-06"  # the root names none: its first LLM span's
    assert stored["input"] == [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]
    assert stored["output"] == [{"role": "assistant", "parts": [{"type": "text", "content": "y"}]}]
    assert (stored["prompt_tokens"], stored["completion_tokens"], stored["total_token_count"]) == (12, 5, 17)
    assert stored["cost"] == 0.0015
    assert stored["status"] == "success" and stored["error"] is None
    assert stored["metadata"]["service.name"] == "checkout"
    assert stored["metadata"]["deployment.environment"] == "test"
    assert stored["span_count"] == 3
    by_name = {s["name"]: s for s in stored["spans"]}
    root_id = hex_id(next(s for s in spans if s.parent is None).context.span_id, 8)
    assert by_name["agent run"]["parent_span_id"] is None and by_name["agent run"]["id"] == root_id
    assert by_name["chat gpt-4o"]["parent_span_id"] == root_id
    assert by_name["chat gpt-4o"]["type"] == "llm"
    assert by_name["chat gpt-4o"]["metadata"]["gen_ai.provider.name"] == "openai"
    assert by_name["chat gpt-4o"]["metadata"]["otel.kind"] == "client"
    assert by_name["execute_tool search"]["type"] == "tool"
    (event,) = stored["events"]
    assert (event["message"], event["span_id"], event["metadata"]) == ("plan ready", root_id, {"steps": 2})
    assert stored["latency_ms"] > 0


async def test_json_export_reads_old_names_content_events_and_errors(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant
) -> None:
    def build(tracer: Any) -> None:
        with tracer.start_as_current_span("rag") as root:
            root.set_status(Status(StatusCode.ERROR, "upstream timed out"))
            root.set_attribute("error.type", "TimeoutError")
            with tracer.start_as_current_span("openai.chat") as llm:
                llm.set_attributes(
                    {
                        "gen_ai.system": "openai",
                        "gen_ai.request.model": "gpt-3.5-turbo",
                        "gen_ai.usage.prompt_tokens": 30,
                        "gen_ai.usage.completion_tokens": 0,
                    }
                )
                llm.add_event("gen_ai.content.prompt", {"gen_ai.prompt": "What is OTLP?"})
                llm.add_event("gen_ai.content.completion", {"gen_ai.completion": "A protocol."})
                llm.record_exception(TimeoutError("read timed out"))
                llm.set_status(Status(StatusCode.ERROR))

    spans = record({"service.name": "rag-svc"}, build)
    trace_id = hex_id(spans[0].context.trace_id, 16)
    assert await export(json_exporter(harness, tenant), spans) == SpanExportResult.SUCCESS
    stored = await eventually(lambda: stored_trace(http, harness, tenant, trace_id))
    assert stored["error"] == "TimeoutError: upstream timed out"
    assert (stored["status"], stored["failure_type"]) == ("error", "timeout")
    assert stored["model"] == "gpt-3.5-turbo"
    assert stored["input"] == "What is OTLP?" and stored["output"] == "A protocol."
    assert stored["prompt_tokens"] == 30
    llm = next(s for s in stored["spans"] if s["name"] == "openai.chat")
    assert llm["type"] == "llm" and llm["model"] == "gpt-3.5-turbo"
    assert llm["error"] == "TimeoutError: read timed out"  # status ERROR without message: the exception
    # The content events became the span's input/output; the exception stays an event.
    assert [e["level"] for e in stored["events"]] == ["error"]
    assert stored["events"][0]["message"].startswith("exception: TimeoutError")


async def test_spans_over_several_exports_child_first_form_one_trace(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant
) -> None:
    """A child exported alone first shows as a placeholder; once the root and another child
    arrive in a later export there is one trace: the root's, with totals over both exports."""

    def build(tracer: Any) -> None:
        with tracer.start_as_current_span("handle request"):
            for i, tokens in enumerate((10, 20)):
                with tracer.start_as_current_span(f"llm {i}") as llm:
                    llm.set_attributes(
                        {"gen_ai.request.model": "m-1", "gen_ai.system": "x", "gen_ai.usage.input_tokens": tokens}
                    )

    spans = record({"service.name": "split", "trulayer.project": tenant.project_id}, build)
    first_child, second_child, root = spans  # the order they ended
    trace_id = hex_id(root.context.trace_id, 16)
    exporter = protobuf_exporter(harness, tenant)
    assert await export(exporter, [first_child]) == SpanExportResult.SUCCESS
    placeholder = await eventually(lambda: stored_trace(http, harness, tenant, trace_id))
    assert placeholder["name"] == "llm 0" and placeholder["span_count"] == 1 and placeholder["prompt_tokens"] == 10

    assert await export(exporter, [root, second_child]) == SpanExportResult.SUCCESS

    async def whole() -> Any:
        found = await stored_trace(http, harness, tenant, trace_id)
        return found if found and found["span_count"] == 3 and found["name"] == "handle request" else None

    stored = await eventually(whole)
    assert stored["prompt_tokens"] == 30
    assert stored["started_at"] == placeholder["started_at"] or stored["started_at"] < placeholder["started_at"]
    assert {s["parent_span_id"] for s in stored["spans"] if s["name"] != "handle request"} == {
        hex_id(root.context.span_id, 8)
    }
    # One trace in the list and the metrics, not a placeholder beside it.
    async with http.get(f"{harness.gateway_url}/v1/traces", headers=tenant.headers) as resp:
        listed = TraceList.model_validate(await resp.json())
    assert [t.id for t in listed.traces] == [trace_id]
    assert listed.traces[0].name == "handle request"
    async with http.get(f"{harness.gateway_url}/v1/metrics", headers=tenant.headers) as resp:
        metrics = MetricsResponse.model_validate(await resp.json())
    assert metrics.total_traces == 1 and metrics.total_tokens == 30

    # A late child after the root (continued from the root's context): the root's fields stay,
    # the totals grow.
    parent = set_span_in_context(NonRecordingSpan(root.context))
    (late,) = record({"service.name": "split"}, lambda tracer: tracer.start_span("late", context=parent).end())
    assert await export(exporter, [late]) == SpanExportResult.SUCCESS

    async def grown() -> Any:
        found = await stored_trace(http, harness, tenant, trace_id)
        return found if found and found["span_count"] == 4 else None

    final = await eventually(grown)
    assert final["name"] == "handle request" and final["prompt_tokens"] == 30


async def test_project_from_resource_attribute(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant) -> None:
    async with http.post(
        f"{harness.gateway_url}/v1/projects", json={"name": "otel-shop"}, headers=harness.session_headers(tenant.id)
    ) as resp:
        assert resp.status == 201, await resp.text()
        project = await resp.json()

    async def known() -> bool:
        return harness.gateway_app[config_state].project_of_tenant(tenant.id, "otel-shop") is not None

    await eventually(known)
    spans = record({"service.name": "shop", "trulayer.project": "otel-shop"}, lambda t: t.start_span("buy").end())
    trace_id = hex_id(spans[0].context.trace_id, 16)
    assert await export(json_exporter(harness, tenant), spans) == SpanExportResult.SUCCESS
    stored = await eventually(lambda: stored_trace(http, harness, tenant, trace_id))
    assert stored["project_id"] == project["id"]
    assert "trulayer.project" not in stored["metadata"]


async def test_retried_export_is_stored_and_counted_once(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant
) -> None:
    """A re-sent export is a duplicate (no quota, no second record); a new part of the same
    trace is not."""
    await _with_limits(harness, tenant, monthly_traces=2)

    def build(tracer: Any) -> None:
        with tracer.start_as_current_span("root"), tracer.start_as_current_span("child"):
            pass

    child, root = record({"service.name": "retry"}, build)
    exporter = protobuf_exporter(harness, tenant)
    for _ in range(3):  # the same export thrice: one quota unit
        assert await export(exporter, [child]) == SpanExportResult.SUCCESS
    assert await export(exporter, [root]) == SpanExportResult.SUCCESS  # a new part: the second unit
    trace_id = hex_id(root.context.trace_id, 16)

    async def both() -> Any:
        found = await stored_trace(http, harness, tenant, trace_id)
        return found if found and found["span_count"] == 2 else None

    await eventually(both)
    other = record({"service.name": "retry"}, lambda t: t.start_span("another").end())
    body = _protobuf_body(other)
    async with http.post(
        harness.gateway_url + PATH, data=body, headers={**tenant.headers, "Content-Type": "application/x-protobuf"}
    ) as resp:
        assert resp.status == 429
        assert (await resp.json())["code"] == "monthly_quota_exceeded"


def _protobuf_body(spans: Sequence[ReadableSpan]) -> bytes:
    return bytes(encode_spans(spans).SerializeToString())


def _json_span(trace_id: str, span_id: str, start: int, end: int, name: str = "s", **extra: Any) -> dict[str, Any]:
    return {
        "traceId": trace_id,
        "spanId": span_id,
        "name": name,
        "kind": "SPAN_KIND_INTERNAL",
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": end,
        **extra,
    }


async def test_partial_success_names_rejected_spans(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant
) -> None:
    now = time.time_ns()
    trace_id = uuid.uuid4().hex
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "partial"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "hand"},
                        "spans": [
                            _json_span(
                                trace_id,
                                "00000000000000a1",
                                now - 10**9,
                                now,
                                "kept",
                                status={"code": "STATUS_CODE_OK"},
                                attributes=[{"key": "n", "value": {"intValue": "7"}}],
                            ),
                            _json_span("not-hex", "00000000000000a2", now - 10**9, now, "bad id"),
                            _json_span(trace_id, "00000000000000a3", now, now - 10**9, "backwards"),
                            _json_span(trace_id, "00000000000000a4", 10**18, 10**18 + 1, "ancient"),
                            _json_span(trace_id, "00000000000000a5", now - 10**9, now, "bad kind", kind=[1]),
                        ],
                    }
                ],
            }
        ]
    }
    async with http.post(harness.gateway_url + PATH, json=body, headers=tenant.headers) as resp:
        assert resp.status == 200, await resp.text()
        answer = OtlpExportResponse.model_validate(await resp.json())
    assert answer.partialSuccess.rejectedSpans == 4
    message = answer.partialSuccess.errorMessage
    for span_id, reason in (
        ("00000000000000a2", "traceId"),
        ("00000000000000a3", "ends before it starts"),
        ("00000000000000a4", "window"),
        ("00000000000000a5", "kind"),
    ):
        assert span_id in message and reason in message, message
    stored = await eventually(lambda: stored_trace(http, harness, tenant, trace_id))
    assert [s["name"] for s in stored["spans"]] == ["kept"]
    assert stored["spans"][0]["metadata"]["n"] == 7

    # The same with protobuf: the answer is a protobuf ExportTraceServiceResponse.
    spans = record({"service.name": "pb"}, lambda t: t.start_span("x").end())
    request = ExportTraceServiceRequest.FromString(_protobuf_body(spans))
    request.resource_spans[0].scope_spans[0].spans[0].span_id = b"\x00" * 8
    async with http.post(
        harness.gateway_url + PATH,
        data=request.SerializeToString(),
        headers={**tenant.headers, "Content-Type": "application/x-protobuf"},
    ) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/x-protobuf"
        pb = ExportTraceServiceResponse.FromString(await resp.read())
    assert pb.partial_success.rejected_spans == 1
    assert "invalid span id" in pb.partial_success.error_message


async def test_bad_requests_get_their_documented_status(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant
) -> None:
    url = harness.gateway_url + PATH
    pb = {**tenant.headers, "Content-Type": "application/x-protobuf"}
    cases: list[tuple[dict[str, str], bytes, int, str]] = [
        ({**tenant.headers, "Content-Type": "text/plain"}, b"{}", 415, "unsupported_media_type"),
        ({**pb, "Content-Encoding": "lz4"}, b"x", 415, "unsupported_media_type"),
        (pb, b"\xff\xff\xff", 400, "malformed_otlp"),
        ({**tenant.headers, "Content-Type": "application/json"}, b"[1, 2]", 400, "malformed_otlp"),
        ({**tenant.headers, "Content-Type": "application/json"}, b"{not json", 400, "malformed_otlp"),
        ({**tenant.headers, "Content-Type": "application/json"}, b'{"resourceSpans": 3}', 400, "malformed_otlp"),
        ({**pb, "Content-Encoding": "gzip"}, b"not gzip at all", 400, "bad_content_encoding"),
        ({"Content-Type": "application/x-protobuf"}, b"", 401, "unauthorized"),
        # A gzip bomb: 30 KiB that would expand to 30 MiB.
        ({**pb, "Content-Encoding": "gzip"}, gzip.compress(b"\x00" * (30 * 1024 * 1024)), 413, "payload_too_large"),
        (pb, b"\x00" * (20 * 1024 * 1024 + 1), 413, "payload_too_large"),
    ]
    # A connection per request: the server closes one whose body it could not decode.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as fresh:
        for headers, data, status, code in cases:
            async with fresh.post(url, data=io.BytesIO(data), headers=headers) as resp:
                assert resp.status == status, (headers, data[:20], await resp.text())
                error = ErrorBody.model_validate(await resp.json())
                assert error.code == code and error.request_id == resp.headers["X-Request-Id"]
    # An empty protobuf export is a valid one with no spans.
    async with http.post(url, data=b"", headers=pb) as resp:
        assert resp.status == 200
        assert ExportTraceServiceResponse.FromString(await resp.read()).partial_success.rejected_spans == 0
    async with http.post(url, json={"resourceSpans": []}, headers=tenant.headers) as resp:
        assert resp.status == 200
        assert await resp.json() == {"partialSuccess": {"rejectedSpans": 0, "errorMessage": ""}}


async def test_openapi_documents_the_otlp_route(http: aiohttp.ClientSession, harness: Harness) -> None:
    async with http.get(f"{harness.gateway_url}/openapi.json") as resp:
        document = await resp.json()
    operation = document["paths"][PATH]["post"]
    assert set(operation["requestBody"]["content"]) == {"application/json", "application/x-protobuf"}
    assert set(operation["responses"]["200"]["content"]) == {"application/json", "application/x-protobuf"}
    assert {"400", "401", "403", "413", "415", "429", "503"} <= set(operation["responses"])
    assert operation["x-trulayer-limit"] == "ingest"
