"""OTLP traces: one trace row derived from every span stored for the trace, whatever the order.

OpenTelemetry exports a trace's spans as they end, batch by batch: its spans may arrive in
several exports, children usually before their root. The gateway sends each export's spans of
a trace as a *part* (``otlp`` marker, :mod:`trulayer_common.topics.traces`), every part of a
trace to the same Kafka partition, so one consumer sees a trace's parts in order. The
transform turns a part's spans and events into rows like any other and hands the part to
:data:`~ingest_worker.rows.TRACE_PARTS`. Once a batch is written, :class:`TracePartSink`
derives each touched trace's row from *all* its spans and inserts it:

* **First sight** (no row stored for the trace yet: most traces, which arrive whole): from the
  spans of its parts in this batch, in memory.
* **Seen before** (a row is stored: the trace was split over exports, or this is a
  redelivery): from every span stored for it, one query over ``spans`` keyed by tenant,
  project and trace id (:data:`_SUMMARY_SQL`).

Either way (:func:`derive`): with the root known (a span without a parent) the trace is the
root's name, times, latency and error, and the root's model, input and output or else its
first / last LLM span's; without it, a placeholder: the earliest span's name, the extent of the
spans, the first span error. Tokens, cost and span count are summed over every span.

Each derived row is a new version whose ``created_at`` is later than any stored version of the
trace, so the newest (``FINAL``, ``ORDER BY created_at DESC``) is derived from the most spans and
the root's version replaces a placeholder. Versions share the sorting key unless the trace's
start hour changes (a root begun before the hour arriving after a child begun after it; the key
is ``(tenant, toStartOfHour(started_at), project, id)`` since migration 0008): the older
versions under another hour are then deleted. See ``docs/otlp.md``.

The rollups count every row inserted into ``traces`` (migration 0008's views). Before a new
version of a trace seen before is inserted, the newest stored version goes to
``trace_rollup_retractions`` (a Null table whose views subtract it from the rollups), so the
rollups hold each trace once, as its newest version: exact for counts, sums and histograms (a
superseded version's latency can still be the min or max of its bucket; see docs/reads.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from prometheus_client import Counter

from ingest_worker.rows import TRACE_PARTS, complete_trace_row
from trulayer_common.clickhouse.table_sink import TableRows, TableSink
from trulayer_common.logging import get_logger

log = get_logger(__name__)
TRACES_DERIVED = Counter("trulayer_ingest_otlp_traces_derived_total", "trace rows derived from OTLP spans", ["source"])
STALE_DELETED = Counter(
    "trulayer_ingest_otlp_stale_versions_deleted_total", "older trace versions deleted after a start-hour change"
)

Key = tuple[str, str, str]  # tenant, project, trace id
_TICK = timedelta(milliseconds=1)

# Every aggregate of a trace's stored spans that a derivation needs, one row per trace.
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
  AND trace_id IN {{trace_ids:Array(String)}}
  AND (tenant_id, project_id, trace_id) IN {{keys:Array(Tuple(String, String, String))}}
GROUP BY tenant_id, project_id, trace_id
"""
# The stored versions of the touched traces: whether there is one, its start hours, the newest.
_VERSIONS_SQL = """
SELECT tenant_id, project_id, id, groupUniqArray(toStartOfHour(started_at)) AS dates, max(created_at) AS newest
FROM {db}.traces
WHERE tenant_id IN {tenants:Array(String)}
  AND id IN {trace_ids:Array(String)}
  AND (tenant_id, project_id, id) IN {keys:Array(Tuple(String, String, String))}
GROUP BY tenant_id, project_id, id
"""
_DELETE_SQL = """
DELETE FROM {db}.traces
WHERE tenant_id = {tenant:String} AND project_id = {project:String} AND id = {id:String}
  AND toStartOfHour(started_at) IN {dates:Array(DateTime('UTC'))} AND created_at < {version:DateTime64(3, 'UTC')}
"""
# The newest stored version of the traces about to get a new one, as the rollups counted it.
_NEWEST_SQL = """
SELECT tenant_id, project_id, id, model, status, failure_type, metadata, started_at, created_at, retention_days,
    latency_ms, cost, prompt_tokens, completion_tokens, total_tokens
FROM {db}.traces
WHERE tenant_id IN {tenants:Array(String)}
  AND id IN {trace_ids:Array(String)}
  AND (tenant_id, project_id, id) IN {keys:Array(Tuple(String, String, String))}
ORDER BY created_at DESC
LIMIT 1 BY tenant_id, project_id, id
"""
Announce = Callable[[Iterable[Mapping[str, Any]]], Awaitable[None]]


def derive(part: Mapping[str, Any], summary: Mapping[str, Any]) -> dict[str, Any]:
    """The trace of one OTLP trace id from the latest part (its project, resource metadata,
    session) and the summary of all its spans (:data:`_SUMMARY_SQL`'s columns, or
    :func:`summarize`'s). Pure; :func:`~ingest_worker.rows.complete_trace_row` makes it a row."""
    if summary["roots"]:
        name, started, ended = summary["root_name"], summary["root_start"], summary["root_end"]
        latency, error = summary["root_latency"], summary["root_error"]
        model = summary["root_model"] or summary["llm_model"]
        given_input, given_output = summary["root_input"], summary["root_output"]
    else:
        name, started, ended = summary["first_name"], summary["first_start"], summary["last_end"]
        latency = (ended - started).total_seconds() * 1000 if started and ended else None
        error, model = summary["first_error"], summary["llm_model"]
        given_input, given_output = None, None
    return {
        "id": part["id"],
        "project_id": part["project_id"],
        "name": name,
        "started_at": started or part["started_at"],
        "ended_at": ended,
        "latency_ms": latency,
        "error": error or None,
        "model": model or None,
        "input": _present(given_input) or _present(summary["llm_input"]),
        "output": _present(given_output) or _present(summary["llm_output"]),
        "prompt_tokens": summary["sum_prompt"],
        "completion_tokens": summary["sum_completion"],
        "cost": summary["sum_cost"] if summary["n_costed"] else None,
        "metadata": part.get("metadata") or {},
        "session_id": summary["session_id"] or summary["conversation_id"] or part.get("session_id") or None,
    }


def _present(value: Any) -> Any:
    return None if value is None or value == "" else value


def _time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value)).astimezone(UTC).replace(tzinfo=None)


def _metadata_text(metadata: Any, key: str) -> str:
    if isinstance(metadata, str):
        try:
            metadata = orjson.loads(metadata)
        except orjson.JSONDecodeError:
            return ""
    value = metadata.get(key) if isinstance(metadata, dict) else None
    return value if isinstance(value, str) else ""


def summarize(spans: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """:data:`_SUMMARY_SQL`'s columns computed from span rows in memory (one trace's)."""
    unique = list({s["id"]: s for s in spans}.values())  # the same span twice counts once
    timed = sorted(unique, key=lambda s: (_time(s.get("start_time")) or datetime.max, s["id"]))
    roots = [s for s in timed if not s.get("parent_span_id")]
    llm = [s for s in timed if s.get("type") == "llm"]
    costs = [s["cost"] for s in unique if s.get("cost") is not None]
    ends = [e for e in (_time(s.get("end_time")) for s in unique) if e is not None]
    root = roots[0] if roots else {}
    last_llm_output = max(
        (s for s in llm if _present(s.get("output")) is not None),
        key=lambda s: _time(s.get("end_time")) or datetime.min,
        default={},
    )

    def first(items: list[Mapping[str, Any]], value: Any) -> Any:
        return next((v for v in (value(s) for s in items) if v), "")

    return {
        "n_spans": len(unique),
        "sum_prompt": sum(s.get("prompt_tokens") or 0 for s in unique),
        "sum_completion": sum(s.get("completion_tokens") or 0 for s in unique),
        "sum_cost": sum(costs),
        "n_costed": len(costs),
        "first_start": _time(timed[0].get("start_time")) if timed else None,
        "last_end": max(ends) if ends else None,
        "roots": len(roots),
        "root_name": root.get("name", ""),
        "root_start": _time(root.get("start_time")),
        "root_end": _time(root.get("end_time")),
        "root_latency": root.get("latency_ms"),
        "root_error": root.get("error"),
        "root_model": root.get("model") or "",
        "root_input": root.get("input"),
        "root_output": root.get("output"),
        "first_name": timed[0].get("name", "") if timed else "",
        "first_error": first(timed, lambda s: s.get("error")) or None,
        "llm_model": first(llm, lambda s: s.get("model")),
        "llm_input": first(llm, lambda s: _present(s.get("input"))),
        "llm_output": last_llm_output.get("output"),
        "session_id": first(timed, lambda s: _metadata_text(s.get("metadata"), "session.id")),
        "conversation_id": first(timed, lambda s: _metadata_text(s.get("metadata"), "gen_ai.conversation.id")),
    }


def _key_of(row: Mapping[str, Any], id_field: str) -> Key:
    return (row["tenant_id"], row["project_id"], row[id_field])


def _hour(value: Any) -> datetime:
    """The start of the hour of a time (a datetime, or ISO text), naive UTC."""
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    return at.replace(minute=0, second=0, microsecond=0)


def _params(keys: Iterable[Key]) -> dict[str, Any]:
    keys = list(keys)
    return {"tenants": sorted({k[0] for k in keys}), "trace_ids": sorted({k[2] for k in keys}), "keys": keys}


class TracePartSink(TableSink):
    """The trace writer's sink: writes the rows of a batch, then derives the trace rows of the
    OTLP traces it touched. Writing the same batch again derives the same rows (idempotent).
    ``announce`` (the live tail) gets the trace rows of each written batch, derived ones too."""

    def __init__(self, *args: Any, announce: Announce | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._announce = announce

    def size(self, item: TableRows) -> int:
        # A part counts as a trace: its trace row is derived after the write.
        return super().size(item) + len(item.get(TRACE_PARTS, ()))

    async def write(self, items: Sequence[TableRows]) -> None:
        parts: dict[Key, list[dict[str, Any]]] = {}
        for item in items:
            for part in item.get(TRACE_PARTS, ()):
                parts.setdefault(_key_of(part, "id"), []).append(part)
        await super().write([{t: rows for t, rows in item.items() if t != TRACE_PARTS} for item in items])
        derived = await self._derive(parts) if parts else []
        if self._announce is not None:
            await self._announce([*(row for item in items for row in item.get("traces", ())), *derived])

    async def _derive(self, parts: dict[Key, list[dict[str, Any]]]) -> list[dict[str, Any]]:
        ch = self._clickhouse
        stored = {
            _key_of(r, "id"): r for r in await ch.query(_VERSIONS_SQL.replace("{db}", ch.database), _params(parts))
        }
        rows: list[dict[str, Any]] = []
        for key, received in parts.items():
            if key in stored:
                continue
            part = _best(received)
            summary = summarize(span for p in received for span in p.get("span_rows") or ())
            rows.append(self._row(key, part, summary, part["created_at"]))
        TRACES_DERIVED.labels("memory").inc(len(rows))
        stale: list[tuple[Key, list[datetime], Any]] = []
        if stored:
            summaries = await ch.query(_SUMMARY_SQL.replace("{db}", ch.database), _params(stored))
            for summary in summaries:
                key = _key_of(summary, "trace_id")
                previous = stored[key]
                # Later than every stored version, whichever clock wrote those.
                version = max(summary["derived_at"], previous["newest"] + _TICK)
                row = self._row(key, _best(parts[key]), summary, version)
                rows.append(row)
                older = [d for d in previous["dates"] if _hour(d) != _hour(row["started_at"])]
                if older:
                    stale.append((key, older, version))
            TRACES_DERIVED.labels("stored").inc(len(summaries))
            # What the rollups counted for these traces goes out before their new version comes in.
            superseded = await ch.query(_NEWEST_SQL.replace("{db}", ch.database), _params(stored), quick=True)
            await ch.insert_json_rows("trace_rollup_retractions", superseded, self._settings)
        await ch.insert_json_rows("traces", rows, self._settings)
        for (tenant, project, trace_id), dates, version in stale:
            await ch.command(
                _DELETE_SQL.replace("{db}", ch.database),
                {"tenant": tenant, "project": project, "id": trace_id, "dates": dates, "version": version},
            )
            STALE_DELETED.inc()
            log.info("otlp_trace_start_hour_moved", trace_id=trace_id, deleted_hours=[str(d) for d in dates])
        return rows

    @staticmethod
    def _row(key: Key, part: Mapping[str, Any], summary: Mapping[str, Any], version: Any) -> dict[str, Any]:
        trace = derive(part, summary)
        return complete_trace_row(trace, key[0], version, part["retention_days"], summary["n_spans"])


def _best(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The part that describes the trace best: the one holding the root, else the latest."""
    return next((p for p in reversed(parts) if p["otlp"].get("root")), parts[-1])
