"""``POST /v1/ingest`` and ``POST /v1/ingest/batch``: authenticate, validate, produce, answer.

The hot path never touches ClickHouse. One Kafka record carries the traces of one request,
with every id filled in and every project resolved here, so the worker's transform is pure
and a redelivered record produces rows with the same keys. A 2xx is sent only after the
broker acknowledged the record (acks=all); a broker that cannot acknowledge in time → 503.

What a request may carry is bounded here (:mod:`trulayer_common.schemas.bounds`, documented in
``docs/limits.md``): spans and events per trace and per request, finite and sane numbers,
timestamps near the time of receipt, and a record the broker accepts (413, never a 503 that
clients would retry forever).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from aiohttp import web
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from prometheus_client import Counter
from pydantic import ValidationError

from gateway.auth import Principal, project_for_ingest
from gateway.limits import rate_limiter_key
from gateway.resources import config_state, dedup_key, principal_key, producer_key, settings_key
from trulayer_common.errors import ApiError, unavailable
from trulayer_common.http import get_request_id, json_response, read_body, validation_error
from trulayer_common.logging import get_logger
from trulayer_common.schemas import (
    BATCH,
    BATCH_TOO_LARGE,
    TRACE,
    TraceRequest,
    batch_items,
    batch_too_large,
    fold_guardlayer_fields,
)
from trulayer_common.schemas.bounds import (
    check_request_items,
    check_times,
    invalid_field,
    quota_units,
    refuse_unstorable_numbers,
)
from trulayer_common.topics import traces as trace_records

log = get_logger(__name__)
TRACES_ACCEPTED = Counter("trulayer_gateway_traces_accepted_total", "traces acknowledged by the broker")
TRACES_DUPLICATE = Counter("trulayer_gateway_traces_duplicate_total", "re-sent trace ids answered as duplicates")
PRODUCE_FAILED = Counter("trulayer_gateway_produce_failed_total", "ingest requests answered 503")
# Record overhead on top of key, value and headers (batch and record headers, varints): generous.
_RECORD_OVERHEAD_BYTES = 1024


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}  # RFC 4122 variant bits 10xx


class _RandomIds:
    """Random (version 4) UUIDs as text, from random bytes read 512 ids at a time: like
    ``str(uuid.uuid4())`` at a fifth of the cost (one ``getrandom`` call per 512 ids)."""

    _BATCH = 512

    def __init__(self) -> None:
        self._hex = ""
        self._at = 0
        # A forked child must not hand out the ids its parent has already buffered.
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._hex, self._at = "", 0

    def __call__(self) -> str:
        if self._at >= len(self._hex):
            self._hex, self._at = os.urandom(16 * self._BATCH).hex(), 0
        h = self._hex[self._at : self._at + 32]
        self._at += 32
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


new_id = _RandomIds()


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def prepare(trace: TraceRequest, project_id: str, project_name_sent: str | None, received_at: datetime) -> None:
    """Fill what the client left out, so the record is complete and replayable as is."""
    if trace.get("id") is None:
        trace["id"] = new_id()
    fold_guardlayer_fields(trace)
    if project_name_sent is not None and project_name_sent != project_id:
        trace["metadata"] = {**(trace.get("metadata") or {}), "project_name": project_name_sent}
    trace["project_id"] = project_id
    started, ended, latency = trace.get("started_at"), trace.get("ended_at"), trace.get("latency_ms")
    if started is None:
        started = received_at
        if ended is not None and latency is not None:
            started = ended - timedelta(milliseconds=latency)
        trace["started_at"] = started
    if latency is None and ended is not None:
        # A time sent without an offset is UTC (as in the Kafka record): never mix the two kinds.
        elapsed = _as_utc(ended) - _as_utc(started)
        trace["latency_ms"] = max(elapsed.total_seconds() * 1000.0, 0.0)
    for span in trace.get("spans") or ():
        if span.get("id") is None:
            span["id"] = new_id()
    for event in trace.get("events") or ():
        if event.get("id") is None:
            event["id"] = new_id()


def record_too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        f"The request is too large once stored as one record (max {limit} bytes): send fewer traces per request",
        "payload_too_large",
    )


async def accept(
    request: web.Request,
    principal: Principal,
    traces: list[TraceRequest],
    prefix: str | None = None,
    dedup_keys: Sequence[str] | None = None,
) -> tuple[list[str], set[str]]:
    """Produce the new traces; returns (all ids in order, the dedup keys found to be duplicates).

    ``prefix`` names the array the traces came in (``traces``), for errors naming a field.
    ``dedup_keys``, one per trace, name what a re-sent request repeats; by default the trace
    ids (then the duplicates are ids). OTLP passes one key per part of a trace, since the
    spans of one trace id arrive over several exports (:mod:`gateway.otlp`).
    """
    state = request.app[config_state]
    received_at = datetime.now(UTC)
    check_request_items(traces)
    for i, trace in enumerate(traces):
        check_times(trace, received_at, f"{prefix}.{i}." if prefix else "")
    projects: dict[str | None, str] = {}  # a batch names few projects: resolve each once
    retention: dict[str, int] = {}  # projects with a retention override, for the worker's TTL
    for trace in traces:
        sent = trace.get("project_id")
        project_id = projects.get(sent)
        if project_id is None:
            project = project_for_ingest(state, principal, sent)
            project_id = projects[sent] = project.id
            if project.retention_days_override is not None:
                retention[project.id] = project.retention_days_override
        prepare(trace, project_id, sent, received_at)
    ids: list[str] = [t["id"] for t in traces]  # type: ignore[misc]  # prepare() filled every id
    tenant_id = principal.tenant.id
    dedup = request.app[dedup_key]
    keys = list(dedup_keys) if dedup_keys is not None else ids
    duplicates = await dedup.seen(tenant_id, keys)
    # A batch may repeat an id: the first occurrence is kept, the rest are duplicates.
    fresh: list[TraceRequest] = []
    taken: dict[str, None] = {}  # keys of fresh, in order
    for item_key, trace in zip(keys, traces, strict=True):
        if item_key in duplicates or item_key in taken:
            duplicates.add(item_key)
            continue
        taken[item_key] = None
        fresh.append(trace)
    if fresh:
        settings = request.app[settings_key]
        try:
            value = trace_records.encode(
                tenant_id=tenant_id,
                project_id=fresh[0].get("project_id") or principal.require_api_key().project_id,
                received_at=received_at,
                request_id=get_request_id(request),
                traces=fresh,
                retention_days=retention,
            )
        except TypeError as exc:  # orjson: a value JSON cannot hold (the body checks catch the known ones)
            raise invalid_field("body", "holds a value that cannot be stored as JSON") from exc
        key = trace_records.key(fresh)
        headers = [(trace_records.POINTS_HEADER, trace_records.encode_points(tenant_id, received_at, fresh))]
        size = len(value) + len(key) + sum(len(k) + len(v) for k, v in headers) + _RECORD_OVERHEAD_BYTES
        if size > settings.kafka_max_message_bytes:
            raise record_too_large(settings.kafka_max_message_bytes)
        # The monthly quota counts trace units (duplicates are free; spans and events count, see
        # schemas.bounds.quota_units); 429 before producing.
        units = quota_units(fresh)
        limiter = request.app.get(rate_limiter_key)
        reserved = limiter is not None and await limiter.reserve_traces(principal.tenant, units)
        try:
            await asyncio.wait_for(
                request.app[producer_key].send_and_wait(trace_records.TOPIC, value=value, key=key, headers=headers),
                settings.produce_timeout_seconds,
            )
        except (KafkaError, TimeoutError) as exc:
            if reserved and limiter is not None:
                await limiter.release_traces(principal.tenant, units)
            if isinstance(exc, MessageSizeTooLargeError):  # final: a retry would be refused again
                raise record_too_large(settings.kafka_max_message_bytes) from exc
            PRODUCE_FAILED.inc()
            log.warning("produce_failed", error=repr(exc), traces=len(fresh))
            raise unavailable("Ingest is temporarily unavailable: the broker did not acknowledge", 2) from exc
        TRACES_ACCEPTED.inc(len(fresh))
        await dedup.mark(tenant_id, list(taken))
    TRACES_DUPLICATE.inc(len(duplicates))
    return ids, duplicates


async def ingest_one(request: web.Request) -> web.Response:
    principal = request[principal_key]
    body = await read_body(request, request.app[settings_key].max_body_bytes)
    try:
        trace = TRACE.validate_json(body)
    except ValidationError as exc:
        raise validation_error(exc) from None
    refuse_unstorable_numbers(body, trace)
    ids, duplicates = await accept(request, principal, [trace])
    if duplicates:
        return json_response({"status": "duplicate", "id": ids[0]}, status=200)
    created_at = trace.get("started_at") or datetime.now(UTC)
    return json_response({"id": ids[0], "created_at": created_at.isoformat(), "status": "ingested"}, status=201)


async def ingest_batch(request: web.Request) -> web.Response:
    principal = request[principal_key]
    body = await read_body(request, request.app[settings_key].max_body_bytes)
    try:
        batch = BATCH.validate_json(body)
    except ValidationError as exc:
        raise (BATCH_TOO_LARGE if batch_too_large(exc) else validation_error(exc)) from None
    refuse_unstorable_numbers(body, batch)
    traces = batch_items(batch)
    ids, duplicates = await accept(request, principal, traces, "calls" if batch.get("calls") is not None else "traces")
    answer: dict[str, object] = {
        "ingested": len(ids) - len(duplicates),
        "ids": ids,
        "duplicates": len(duplicates),
    }
    if batch.get("calls") is not None:  # GuardLayer clients read a per-call list
        now = datetime.now(UTC)
        answer["calls"] = [
            {"id": trace_id, "created_at": (t.get("started_at") or now).isoformat()}
            for trace_id, t in zip(ids, traces, strict=True)
        ]
    return json_response(answer, status=201)
