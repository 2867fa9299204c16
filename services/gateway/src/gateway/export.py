"""``GET /v1/traces/export?format=csv|jsonl``: every trace matching the list's filters, streamed.

Newest first, in pages of :data:`PAGE` traces read exactly as ``GET /v1/traces`` reads a page
(the newest hours that hold it, ``FINAL`` over those only; :func:`gateway.traces.newest_page`),
each page written to the response before the next is read. So the memory an export holds is
one page whatever its length, a page takes a reader only briefly (dashboards are not starved by
a long export), and a slow client slows the export instead of growing a buffer (writes wait for
the socket). ``limit`` caps the rows. CSV columns are :data:`CSV_COLUMNS` (JSON values as JSON
text); JSON lines are the trace objects of ``GET /v1/traces``. An error after the first bytes
can no longer change the status: the stream is cut short instead (no final newline).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

import orjson
from aiohttp import web

from gateway.params import bad_param, get_int, get_str
from gateway.resources import clickhouse_key, principal_key
from gateway.trace_filters import trace_filters
from gateway.trace_window import hour_counts
from gateway.traces import PageCounts, newest_page, trace_out
from trulayer_common.logging import get_logger

log = get_logger(__name__)
PAGE = 2_000
MAX_LIMIT = 10_000_000
FORMATS = {"csv": "text/csv", "jsonl": "application/x-ndjson"}
CSV_COLUMNS = (
    "id",
    "project_id",
    "session_id",
    "external_id",
    "name",
    "model",
    "status",
    "failure_type",
    "error",
    "latency_ms",
    "cost",
    "prompt_tokens",
    "completion_tokens",
    "total_token_count",
    "span_count",
    "tags",
    "metadata",
    "input",
    "output",
    "started_at",
    "ended_at",
    "created_at",
)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return value


def csv_rows(traces: Iterable[dict[str, Any]], header: bool) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    for trace in traces:
        writer.writerow([_cell(trace.get(column)) for column in CSV_COLUMNS])
    return out.getvalue().encode()


def jsonl_rows(traces: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(trace) + b"\n" for trace in traces)


async def export_traces(request: web.Request) -> web.StreamResponse:
    principal = request[principal_key]
    query = request.query
    fmt = get_str(query, "format") or "csv"
    if fmt not in FORMATS:
        raise bad_param("format", "expected csv or jsonl")
    limit = get_int(query, "limit", 1, MAX_LIMIT) or MAX_LIMIT
    filters = trace_filters(query, principal, request)
    ch = request.app[clickhouse_key]
    # The first page is read before answering, so a bad filter or a busy pool is still a clean 4xx/5xx.
    counts = PageCounts(await hour_counts(ch, filters, filters.end, filters.start))
    wanted = min(PAGE, limit)
    page = await newest_page(ch, filters, wanted, None, counts)
    response = web.StreamResponse(
        headers={
            "Content-Type": FORMATS[fmt],
            "Content-Disposition": f'attachment; filename="traces.{fmt}"',
            "Cache-Control": "no-store",
        }
    )
    response.enable_chunked_encoding()
    await response.prepare(request)
    sent = 0
    try:
        if fmt == "csv":
            await response.write(csv_rows((), header=True))
        while page:
            traces = [trace_out(row) for row in page]
            await response.write(csv_rows(traces, header=False) if fmt == "csv" else jsonl_rows(traces))
            sent += len(page)
            if len(page) < wanted or sent >= limit:
                break  # the last page
            after = (page[-1]["started_at"], page[-1]["id"])
            wanted = min(PAGE, limit - sent)
            page = await newest_page(ch, filters, wanted, after, counts)
        await response.write_eof()
    except ConnectionError:
        log.info("export_client_gone", rows=sent)
    except Exception:
        # Headers are sent: the status cannot say it any more. End without a clean EOF.
        log.exception("export_failed", rows=sent)
        if request.transport is not None:
            request.transport.close()
    return response
