"""Stored traces for the evaluations of ``trulayer.eval.requests``, read from ClickHouse.

Lookups are batched: the requests that want a trace within :data:`BATCH_WINDOW_SECONDS` (or
:data:`BATCH_MAX` of them) share one query per tenant for the traces and one for their
retrieval spans, so on-demand evaluations do not cost a query each. Tenant-scoped always.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from eval_engine.trace_view import TraceView, from_row
from trulayer_common.clickhouse import ClickHouse
from trulayer_common.logging import get_logger

log = get_logger(__name__)
BATCH_WINDOW_SECONDS = 0.01
BATCH_MAX = 200
_Key = tuple[str, str]  # (tenant_id, trace_id)


class TraceLoader:
    def __init__(self, clickhouse: ClickHouse) -> None:
        self._ch = clickhouse
        self._waiting: dict[_Key, list[asyncio.Future[TraceView | None]]] = {}
        self._flush: asyncio.TimerHandle | None = None

    async def get(self, tenant_id: str, trace_id: str) -> TraceView | None:
        """The tenant's stored trace, or ``None`` when it is not (yet) stored."""
        future: asyncio.Future[TraceView | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault((tenant_id, trace_id), []).append(future)
        if len(self._waiting) >= BATCH_MAX:
            self._start_flush()
        elif self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(BATCH_WINDOW_SECONDS, self._start_flush)
        return await future

    def _start_flush(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        waiting, self._waiting = self._waiting, {}
        if waiting:
            asyncio.get_running_loop().create_task(self._load(waiting), name="trace-loader")

    async def _load(self, waiting: dict[_Key, list[asyncio.Future[TraceView | None]]]) -> None:
        by_tenant: dict[str, list[str]] = defaultdict(list)
        for tenant_id, trace_id in waiting:
            by_tenant[tenant_id].append(trace_id)
        try:
            found: dict[_Key, TraceView] = {}
            for tenant_id, ids in by_tenant.items():
                for view in await self._query(tenant_id, ids):
                    found[(tenant_id, view.id)] = view
        except Exception as exc:
            for futures in waiting.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
            return
        for key, futures in waiting.items():
            for future in futures:
                if not future.done():
                    future.set_result(found.get(key))

    async def _query(self, tenant_id: str, ids: list[str]) -> list[TraceView]:
        ch = self._ch
        params = {"tenant": tenant_id, "ids": ids}
        rows = await ch.query(
            "SELECT id, project_id, name, model, input, output, latency_ms, error, tag_list, tag_map, metadata "
            f"FROM {ch.database}.traces WHERE tenant_id = {{tenant:String}} AND id IN {{ids:Array(String)}} "
            "ORDER BY created_at DESC LIMIT 1 BY id",
            params,
            quick=True,  # a lookup by key: before queued scans, never held by the read budget
        )
        if not rows:
            return []
        spans = await ch.query(
            f"SELECT trace_id, output FROM {ch.database}.spans FINAL WHERE tenant_id = {{tenant:String}} "
            "AND trace_id IN {ids:Array(String)} AND type = 'retrieval' AND output != '' ORDER BY start_time, id",
            params,
            quick=True,
        )
        retrieved: dict[str, list[str]] = defaultdict(list)
        for span in spans:
            retrieved[span["trace_id"]].append(span["output"])
        return [from_row(row, tuple(retrieved.get(row["id"], ()))) for row in rows]
