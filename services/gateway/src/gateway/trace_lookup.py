"""Which trace a feedback or an evaluation request is about: the tenant's stored trace, by id.

Feedback and evaluation requests name a trace; an unknown one is 404. The trace is looked up in
ClickHouse, tenant-scoped (another tenant's trace is as unknown as a missing one). A trace the
gateway accepted moments ago may not be stored yet (the worker writes within about half a
second): when the gateway's recent-ids set (:mod:`gateway.dedup`) knows the id, the lookup
waits up to ``TRACE_WAIT_SECONDS`` for it to be stored, and answers 503 (retry) if it still is
not, instead of a 404 that would be wrong.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiohttp import web

from gateway.resources import clickhouse_key, dedup_key
from trulayer_common.errors import not_found, unavailable

TRACE_WAIT_SECONDS = 3.0
_POLL_SECONDS = 0.1


@dataclass(frozen=True, slots=True)
class TraceRef:
    id: str
    project_id: str
    model: str


async def _stored(request: web.Request, tenant_id: str, trace_id: str) -> TraceRef | None:
    ch = request.app[clickhouse_key]
    # No FINAL: any stored version names the same project (the bloom filter on id is used).
    rows = await ch.query(
        f"SELECT project_id, model FROM {ch.database}.traces "
        "WHERE tenant_id = {tenant:String} AND id = {id:String} LIMIT 1",
        {"tenant": tenant_id, "id": trace_id},
        quick=True,
    )
    return TraceRef(trace_id, rows[0]["project_id"], rows[0]["model"]) if rows else None


async def find_trace(request: web.Request, tenant_id: str, trace_id: str) -> TraceRef:
    """The tenant's trace ``trace_id``; 404 when it has none, 503 when it is not stored yet."""
    found = await _stored(request, tenant_id, trace_id)
    if found is not None:
        return found
    if not await request.app[dedup_key].seen(tenant_id, [trace_id]):
        raise not_found(f"Trace '{trace_id}' not found")
    deadline = time.monotonic() + TRACE_WAIT_SECONDS
    while time.monotonic() < deadline:
        await asyncio.sleep(_POLL_SECONDS)
        found = await _stored(request, tenant_id, trace_id)
        if found is not None:
            return found
    raise unavailable("The trace was accepted but is not stored yet; retry", 1)
