"""``POST /v1/otlp/traces``: OpenTelemetry's OTLP/HTTP trace exports, ingested like any trace.

The edge of the OTLP path; the work is done by pure modules: :mod:`gateway.otlp_wire` decodes
the body (protobuf or OTLP JSON),
:mod:`gateway.otlp_mapping` cuts the spans into trace parts, and
:func:`gateway.ingest.accept` produces them exactly as JSON ingest produces traces (project
resolution, dedup, quotas, ``trulayer.traces``): one Kafka record per partition the request's
traces hash to (every part of a trace on the partition of its trace id, so that one consumer
derives each trace, in order), more when the parts would not fit in one record. A part's dedup
key is its trace, project and span ids, so an exporter retrying an export is answered without
storing or counting it twice.

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

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from aiohttp import web
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from prometheus_client import Counter

from gateway.ingest import accept
from gateway.otlp_mapping import MappedExport, map_export
from gateway.otlp_wire import OtlpDecodeError, decode_json, decode_protobuf
from gateway.resources import principal_key, producer_key, settings_key
from trulayer_common.errors import ApiError, unavailable
from trulayer_common.http import json_response, read_limited
from trulayer_common.logging import get_logger
from trulayer_common.schemas.bounds import MAX_ITEMS_PER_REQUEST, item_count
from trulayer_common.schemas.ingest import TraceRequest
from trulayer_common.topics import traces as trace_records

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
    partition_of = await _partitioner(request)
    groups = _records(mapped, settings.kafka_max_message_bytes * 3 // 4, partition_of)
    # One record per partition (and size budget), produced concurrently; a failure answers the
    # request with its error and the exporter's retry is deduplicated part by part.
    await asyncio.gather(*(accept(request, principal, g.parts, dedup_keys=g.keys) for g in groups))
    accepted = sum(g.spans for g in groups)
    OTLP_SPANS.labels("accepted").inc(accepted)
    if mapped.rejected:
        OTLP_SPANS.labels("rejected").inc(mapped.rejected)
        log.info("otlp_spans_rejected", rejected=mapped.rejected, accepted=accepted, first=mapped.examples[0])
    return _answer(media, mapped.rejected, mapped.error_message())


async def _partitioner(request: web.Request) -> Callable[[str], int]:
    """The ``trulayer.traces`` partition a trace id's record goes to (the producer's own
    partitioner on the id as key): every part of a trace lands on one partition, so one
    consumer derives the trace, in order."""
    settings = request.app[settings_key]
    try:
        found = await asyncio.wait_for(
            request.app[producer_key].partitions_for(trace_records.TOPIC), settings.produce_timeout_seconds
        )
    except (KafkaError, TimeoutError) as exc:
        raise unavailable("Ingest is temporarily unavailable: no broker metadata", 2) from exc
    partitions = sorted(found)
    partitioner = DefaultPartitioner()
    return lambda trace_id: int(partitioner(trace_id.encode(), partitions, partitions))


@dataclass
class Group:
    """The parts of one Kafka record: their dedup keys, spans, JSON bytes and spans + events."""

    parts: list[TraceRequest] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    spans: int = 0
    size: int = 0
    items: int = 0


def _records(mapped: MappedExport, budget: int, partition_of: Callable[[str], int]) -> list[Group]:
    """The parts grouped by partition, each group's Kafka record within ``budget`` bytes and the
    spans and events a JSON request may carry (``MAX_ITEMS_PER_REQUEST``); a part too large for
    a record on its own is rejected (its spans counted in the answer)."""
    groups: list[Group] = []
    filling: dict[int, Group] = {}
    for part, key, count in zip(mapped.parts, mapped.dedup_keys, mapped.spans, strict=True):
        size = len(orjson.dumps(part, option=_DATETIMES))
        items = item_count(part)
        if size > budget:
            mapped.rejected += count
            mapped.examples.append(f"trace {part['id']}: {count} span(s) too large for one record ({size} bytes)")
            continue
        partition = partition_of(str(part["id"]))
        group = filling.get(partition)
        if group is None or group.size + size > budget or group.items + items > MAX_ITEMS_PER_REQUEST:
            group = filling[partition] = Group()
            groups.append(group)
        group.parts.append(part)
        group.keys.append(key)
        group.spans += count
        group.size += size
        group.items += items
    return groups


def _answer(media: str, rejected: int, message: str) -> web.Response:
    if media == PROTOBUF:
        answer = ExportTraceServiceResponse()
        if rejected or message:
            answer.partial_success.rejected_spans = rejected
            answer.partial_success.error_message = message
        return web.Response(body=answer.SerializeToString(), content_type=PROTOBUF)
    return json_response({"partialSuccess": {"rejectedSpans": rejected, "errorMessage": message}})
