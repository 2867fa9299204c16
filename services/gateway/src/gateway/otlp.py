"""``POST /v1/otlp/traces``: OpenTelemetry's OTLP/HTTP trace exports, ingested like any trace.

The edge of the OTLP path; the work is done by pure modules: :mod:`gateway.otlp_wire` decodes
the body (protobuf or OTLP JSON),
:mod:`gateway.otlp_mapping` cuts the spans into trace parts, and
:func:`gateway.ingest.accept` produces them exactly as JSON ingest produces traces (project
resolution, dedup, quotas, ``trulayer.traces``): one Kafka record per request, or a few when
the parts would not fit in one. A part's dedup key is its trace, project and span ids, so an
exporter retrying an export is answered without storing or counting it twice.

Answers: ``200`` with ``partialSuccess`` (protobuf ``ExportTraceServiceResponse`` to a protobuf
request, JSON otherwise) naming rejected spans; 400 for a body that is not an export (or not
valid data of its Content-Encoding); 413 over ``OTLP_MAX_BODY_BYTES``, compressed or not; 415
for another Content-Type or an unknown Content-Encoding; the 401/403/429/503 of every ingest
route.

Compression: aiohttp's server undoes ``gzip``, ``deflate`` and ``zstd`` (``br`` with Brotli
installed; without it the server itself answers 400) as the body streams in, in bounded chunks,
so the limit of :func:`~trulayer_common.http.read_limited` bounds the *decompressed* size: a
gzip bomb gets 413 after at most the limit was inflated. ``Content-Length`` bounds the
compressed size before anything is read.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from prometheus_client import Counter

from gateway.ingest import accept
from gateway.otlp_mapping import MappedExport, map_export
from gateway.otlp_wire import OtlpDecodeError, decode_json, decode_protobuf
from gateway.resources import principal_key, settings_key
from trulayer_common.errors import ApiError
from trulayer_common.http import json_response, read_limited
from trulayer_common.logging import get_logger
from trulayer_common.schemas.bounds import MAX_ITEMS_PER_REQUEST, item_count
from trulayer_common.schemas.ingest import TraceRequest

log = get_logger(__name__)
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
ENCODINGS = ("identity", "gzip", "deflate", "zstd", "br")  # decoded by the HTTP server
OTLP_SPANS = Counter("trulayer_gateway_otlp_spans_total", "OTLP spans received, by outcome", ["outcome"])
_DATETIMES = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


async def otlp_traces(request: web.Request) -> web.Response:
    principal = request[principal_key]
    settings = request.app[settings_key]
    media = request.content_type
    if media not in (PROTOBUF, JSON):
        raise ApiError(415, f"Content-Type must be {PROTOBUF} or {JSON}", "unsupported_media_type")
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower() or "identity"
    if encoding not in ENCODINGS:
        raise ApiError(415, "Content-Encoding must be gzip, deflate, zstd or identity", "unsupported_media_type")
    body = await read_limited(request, settings.otlp_max_body_bytes)
    received_at = datetime.now(UTC)
    try:
        spans = decode_protobuf(body) if media == PROTOBUF else decode_json(body)
    except OtlpDecodeError as exc:
        raise ApiError(400, f"Malformed OTLP export: {exc}", "malformed_otlp") from None
    mapped = map_export(spans, received_at)
    budget = settings.kafka_max_message_bytes * 3 // 4
    accepted = 0
    for parts, keys, count in _records(mapped, budget):
        await accept(request, principal, parts, dedup_keys=keys)
        accepted += count
    OTLP_SPANS.labels("accepted").inc(accepted)
    if mapped.rejected:
        OTLP_SPANS.labels("rejected").inc(mapped.rejected)
        log.info("otlp_spans_rejected", rejected=mapped.rejected, accepted=accepted, first=mapped.examples[0])
    return _answer(media, mapped.rejected, mapped.error_message())


def _records(mapped: MappedExport, budget: int) -> list[tuple[list[TraceRequest], list[str], int]]:
    """The parts grouped so that each group's Kafka record stays within ``budget`` bytes and the
    spans and events a JSON request may carry (``MAX_ITEMS_PER_REQUEST``); a part too large for
    a record on its own is rejected (its spans counted in the answer)."""
    groups: list[tuple[list[TraceRequest], list[str], int]] = []
    parts: list[TraceRequest] = []
    keys: list[str] = []
    spans = size = items = 0
    for part, key, count in zip(mapped.parts, mapped.dedup_keys, mapped.spans, strict=True):
        part_size = len(orjson.dumps(part, option=_DATETIMES))
        part_items = item_count(part)
        if part_size > budget:
            mapped.rejected += count
            mapped.examples.append(f"trace {part['id']}: {count} span(s) too large for one record ({part_size} bytes)")
            continue
        if parts and (size + part_size > budget or items + part_items > MAX_ITEMS_PER_REQUEST):
            groups.append((parts, keys, spans))
            parts, keys, spans, size, items = [], [], 0, 0, 0
        parts.append(part)
        keys.append(key)
        spans += count
        size += part_size
        items += part_items
    if parts:
        groups.append((parts, keys, spans))
    return groups


def _answer(media: str, rejected: int, message: str) -> web.Response:
    if media == PROTOBUF:
        answer = ExportTraceServiceResponse()
        if rejected or message:
            answer.partial_success.rejected_spans = rejected
            answer.partial_success.error_message = message
        return web.Response(body=answer.SerializeToString(), content_type=PROTOBUF)
    return json_response({"partialSuccess": {"rejectedSpans": rejected, "errorMessage": message}})
