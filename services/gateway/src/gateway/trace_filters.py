"""The filters of ``GET /v1/traces`` (API.md), shared by the list, the export and the metrics.

:func:`trace_filters` reads the query string once (a bad value is a 400 naming the parameter)
into :class:`TraceFilters`: the SQL conditions over ``traces`` with their bound parameters,
the window, and the same filters as the hour rollup can count them (project, model, status,
error type). ``exact`` says whether the rollup's count is the count of matching traces or only
an upper bound (latency, tokens, tags and session are not rollup dimensions). Values are
always bound, never spliced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from gateway.auth import Principal, project_for_read
from gateway.params import bad_param, get_bool, get_float, get_int, get_str, get_time
from gateway.resources import config_state
from trulayer_common.failures import FAILURE_TYPES


@dataclass
class Where:
    """A conjunction of SQL conditions with their bound parameters."""

    clauses: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def add(self, clause: str, **params: Any) -> None:
        self.clauses.append(clause)
        self.params.update(params)

    def sql(self) -> str:
        return " AND ".join(self.clauses) if self.clauses else "1"


@dataclass
class TraceFilters:
    """``where``: over ``traces``; ``rollup``: over ``trace_rollup_*`` (tenant and dimensions
    only, no time); ``exact``: the rollup's counts are exactly the matching traces'."""

    where: Where
    rollup: Where
    exact: bool
    start: datetime | None
    end: datetime | None
    # The filters as the query layer names them (``gateway.query``), when all are expressible.
    dimensions: dict[str, str] = field(default_factory=dict)
    error: bool | None = None


def trace_filters(query: MultiMapping[str], principal: Principal, request: web.Request) -> TraceFilters:
    """The filters of API.md shared by list, export and metrics; every value bound, never spliced."""
    where, rollup = Where(), Where()
    exact = True
    dimensions: dict[str, str] = {}
    where.add("tenant_id = {tenant:String}", tenant=principal.tenant.id)
    rollup.add("tenant_id = {tenant:String}", tenant=principal.tenant.id)
    project = get_str(query, "project_id")
    if project is not None:
        resolved = project_for_read(request.app[config_state], principal, project)
        where.add("project_id = {project:String}", project=resolved.id)
        rollup.add("project_id = {project:String}", project=resolved.id)
        dimensions["projectId"] = resolved.id
    if (model := get_str(query, "model")) is not None:
        where.add("model = {model:String}", model=model)
        rollup.add("model = {model:String}", model=model)
        dimensions["modelName"] = model
    error = get_bool(query, "error")
    if error is not None:
        where.add("error IS NOT NULL" if error else "error IS NULL")
        # The rollup knows the status, which is "error" for a non-empty error: a trace stored
        # with error "" is counted as a success there (a bound of the window only).
        rollup.add("status = 'error'" if error else "status != 'error'")
        exact = False
    failure = get_str(query, "failure_type")
    if failure is not None:
        if failure not in FAILURE_TYPES:
            raise bad_param("failure_type", f"expected one of {', '.join(FAILURE_TYPES)}")
        where.add("failure_type = {failure:String}", failure=failure)
        rollup.add("failure_type = {failure:String}", failure=failure)
        dimensions["errorType"] = failure
    start, end = get_time(query, "from"), get_time(query, "to")
    if start is not None:
        where.add("started_at >= {from_ts:DateTime64(3, 'UTC')}", from_ts=start)
    if end is not None:
        where.add("started_at < {to_ts:DateTime64(3, 'UTC')}", to_ts=end)
    if start is not None and end is not None and start > end:
        raise bad_param("from", "must not be after 'to'")
    for name, column, op in (
        ("latency_min", "latency_ms", ">="),
        ("latency_max", "latency_ms", "<="),
    ):
        value = get_float(query, name)
        if value is not None:
            where.add(f"{column} {op} {{{name}:Float64}}", **{name: value})
            exact = False
    for name, op in (("token_count_min", ">="), ("token_count_max", "<=")):
        count = get_int(query, name, 0, 2**31)
        if count is not None:
            where.add(f"total_tokens {op} {{{name}:UInt64}}", **{name: count})
            exact = False
    tag_key, tag_value = get_str(query, "tag_key", 64), get_str(query, "tag_value", 64)
    if tag_value is not None and tag_key is None:
        raise bad_param("tag_value", "needs tag_key")
    if tag_key is not None and tag_value is None:
        where.add("(has(tag_list, {tag_key:String}) OR mapContains(tag_map, {tag_key:String}))", tag_key=tag_key)
        exact = False
    elif tag_key is not None:
        where.add(
            "(tag_map[{tag_key:String}] = {tag_value:String} "
            "OR has(tag_list, concat({tag_key:String}, ':', {tag_value:String})))",
            tag_key=tag_key,
            tag_value=tag_value,
        )
        exact = False
    if (session := get_str(query, "session_id")) is not None:
        where.add("session_id = {session:String}", session=session)
        exact = False
    return TraceFilters(where, rollup, exact, start, end, dimensions, error)
