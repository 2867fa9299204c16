"""OTLP traces: one trace row derived from every span stored for the trace, whatever the order.

OpenTelemetry exports a trace's spans as they end, batch by batch: its spans arrive in several
exports, children usually before their root. The gateway sends each export's spans of a trace
as a *part* (``otlp`` marker, :mod:`trulayer_common.topics.traces`); the worker's transform
turns a part's spans and events into rows like any other and hands the part itself to
:data:`~ingest_worker.rows.TRACE_PARTS`. Once a batch's spans are written, :class:`TracePartSink`
derives each touched trace's row from *all* the spans stored for it (a query over ``spans``
keyed by tenant, project and trace id) and inserts it:

* **Root known** (a stored span without a parent): the trace is the root's name, times,
  latency, error; model, input and output are the root's, else its first / last LLM span's.
* **Root not (yet) known**: a placeholder: the earliest span's name, the extent of the stored
  spans, the first span error, the first / last LLM span's model, input, output.
* **Totals** (tokens, cost, span count) are always summed over every stored span.

Each derived row is a new version: ``created_at`` is the time of the derivation, read from the
store's own clock, so the newest version (``FINAL``, or ``ORDER BY created_at DESC``) is the
one derived from the most spans, and the root's version replaces a placeholder. Versions share
the sorting key unless the trace's start date changes (a root that began before midnight UTC
arriving after a child that began after it): the older versions under another date are then
deleted. Redelivery re-derives the same row. See ``docs/otlp.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from prometheus_client import Counter

from ingest_worker.rows import TRACE_PARTS, complete_trace_row
from trulayer_common.clickhouse.table_sink import TableRows, TableSink
from trulayer_common.logging import get_logger

log = get_logger(__name__)
TRACES_DERIVED = Counter("trulayer_ingest_otlp_traces_derived_total", "trace rows derived from OTLP spans")
STALE_DELETED = Counter(
    "trulayer_ingest_otlp_stale_versions_deleted_total", "older trace versions deleted after a start-date change"
)

Key = tuple[str, str, str]  # tenant, project, trace id

# Every aggregate of the trace's stored spans that a derivation needs, one row per trace.
_ROOT = "parent_span_id = ''"
_SUMMARY_SQL = f"""
SELECT tenant_id, project_id, trace_id,
    now64(3, 'UTC') AS derived_at,
    count() AS n_spans,
    sum(prompt_tokens) AS sum_prompt,
    sum(completion_tokens) AS sum_completion,
    sumIf(cost, cost IS NOT NULL) AS sum_cost,
    countIf(cost IS NOT NULL) AS n_costed,
    min(start_time) AS first_start,
    max(end_time) AS last_end,
    countIf({_ROOT}) AS roots,
    argMinIf(name, start_time, {_ROOT}) AS root_name,
    argMinIf(start_time, start_time, {_ROOT}) AS root_start,
    argMinIf(end_time, start_time, {_ROOT}) AS root_end,
    argMinIf(latency_ms, start_time, {_ROOT}) AS root_latency,
    argMinIf(error, start_time, {_ROOT}) AS root_error,
    argMinIf(model, start_time, {_ROOT}) AS root_model,
    argMinIf(input, start_time, {_ROOT}) AS root_input,
    argMinIf(output, start_time, {_ROOT}) AS root_output,
    argMin(name, start_time) AS first_name,
    argMinIf(error, start_time, error IS NOT NULL) AS first_error,
    argMinIf(model, start_time, type = 'llm' AND model != '') AS llm_model,
    argMinIf(input, start_time, type = 'llm' AND input != '') AS llm_input,
    argMaxIf(output, end_time, type = 'llm' AND output != '') AS llm_output,
    argMinIf(JSONExtractString(metadata, 'session.id'), start_time,
             JSONExtractString(metadata, 'session.id') != '') AS session_id,
    argMinIf(JSONExtractString(metadata, 'gen_ai.conversation.id'), start_time,
             JSONExtractString(metadata, 'gen_ai.conversation.id') != '') AS conversation_id
FROM {{db}}.spans FINAL
WHERE tenant_id IN {{tenants:Array(String)}}
  AND (tenant_id, project_id, trace_id) IN {{keys:Array(Tuple(String, String, String))}}
GROUP BY tenant_id, project_id, trace_id
"""
_DATES_SQL = """
SELECT tenant_id, project_id, id, groupUniqArray(toDate(started_at)) AS dates
FROM {db}.traces
WHERE tenant_id IN {tenants:Array(String)}
  AND (tenant_id, project_id, id) IN {keys:Array(Tuple(String, String, String))}
GROUP BY tenant_id, project_id, id
"""
_DELETE_SQL = """
DELETE FROM {db}.traces
WHERE tenant_id = {tenant:String} AND project_id = {project:String} AND id = {id:String}
  AND toDate(started_at) IN {dates:Array(Date)} AND created_at < {version:DateTime64(3, 'UTC')}
"""


def derive(part: Mapping[str, Any], summary: Mapping[str, Any]) -> dict[str, Any]:
    """The trace of one OTLP trace id from the part just received (its project, resource
    metadata, session) and the summary of every span stored for it (:data:`_SUMMARY_SQL`).
    Pure; the result is completed into a row by :func:`~ingest_worker.rows.complete_trace_row`."""
    if summary["roots"]:
        name, started, ended = summary["root_name"], summary["root_start"], summary["root_end"]
        latency, error = summary["root_latency"], summary["root_error"]
        model = summary["root_model"] or summary["llm_model"]
        given_input, given_output = summary["root_input"], summary["root_output"]
    else:
        name, started, ended = summary["first_name"], summary["first_start"], summary["last_end"]
        latency = (ended - started).total_seconds() * 1000 if started and ended else None
        error, model = summary["first_error"], summary["llm_model"]
        given_input, given_output = "", ""
    trace: dict[str, Any] = {
        "id": part["id"],
        "project_id": part["project_id"],
        "name": name,
        "started_at": started or part["started_at"],
        "ended_at": ended,
        "latency_ms": latency,
        "error": error or None,
        "model": model or None,
        "input": given_input or summary["llm_input"] or None,
        "output": given_output or summary["llm_output"] or None,
        "prompt_tokens": summary["sum_prompt"],
        "completion_tokens": summary["sum_completion"],
        "cost": summary["sum_cost"] if summary["n_costed"] else None,
        "metadata": part.get("metadata") or {},
        "session_id": summary["session_id"] or summary["conversation_id"] or part.get("session_id") or None,
    }
    return trace


def _key_of(row: Mapping[str, Any], id_field: str) -> Key:
    return (row["tenant_id"], row["project_id"], row[id_field])


def _day(value: Any) -> date:
    return value.date() if isinstance(value, datetime) else date.fromisoformat(str(value)[:10])


class TracePartSink(TableSink):
    """The trace writer's sink: writes the rows of a batch, then derives the trace rows of the
    OTLP traces it touched. Writing the same batch again derives the same rows (idempotent)."""

    def size(self, item: TableRows) -> int:
        # A part counts as a trace: its trace row is derived after the write.
        return super().size(item) + len(item.get(TRACE_PARTS, ()))

    async def write(self, items: Sequence[TableRows]) -> None:
        parts: dict[Key, dict[str, Any]] = {}
        for item in items:
            for part in item.get(TRACE_PARTS, ()):
                key = _key_of(part, "id")
                # The part holding the root describes the trace best; otherwise the latest.
                if key not in parts or part["otlp"].get("root") or not parts[key]["otlp"].get("root"):
                    parts[key] = part
        await super().write([{t: rows for t, rows in item.items() if t != TRACE_PARTS} for item in items])
        if parts:
            await self._derive(parts)

    async def _derive(self, parts: dict[Key, dict[str, Any]]) -> None:
        ch = self._clickhouse
        params = {"tenants": sorted({k[0] for k in parts}), "keys": list(parts)}
        summaries = await ch.query(_SUMMARY_SQL.replace("{db}", ch.database), params)
        existing = {
            _key_of(r, "id"): r["dates"] for r in await ch.query(_DATES_SQL.replace("{db}", ch.database), params)
        }
        rows: list[dict[str, Any]] = []
        stale: list[tuple[Key, list[date], Any]] = []
        for summary in summaries:
            key = _key_of(summary, "trace_id")
            part = parts.get(key)
            if part is None:
                continue
            trace = derive(part, summary)
            version = summary["derived_at"]
            rows.append(complete_trace_row(trace, key[0], version, part["retention_days"], summary["n_spans"]))
            older = [d for d in existing.get(key, ()) if _day(d) != _day(trace["started_at"])]
            if older:
                stale.append((key, older, version))
        await ch.insert_json_rows("traces", rows, self._settings)
        TRACES_DERIVED.inc(len(rows))
        for (tenant, project, trace_id), dates, version in stale:
            await ch.command(
                _DELETE_SQL.replace("{db}", ch.database),
                {"tenant": tenant, "project": project, "id": trace_id, "dates": dates, "version": version},
            )
            STALE_DELETED.inc()
            log.info("otlp_trace_start_date_moved", trace_id=trace_id, deleted_dates=[str(d) for d in dates])
