"""The pure transforms from input records to observations, grouped per tenant × project.

An observation message (the value of the internal ``<app>-observations`` topic, keyed
``tenant|project`` so that one project's state lives on one partition) is::

    {"tenant_id", "project_id",
     "points": [[event_ts, model, latency_ms | null, is_error 0/1, cost | null], ...],
     "scores": [[event_ts, model, metric_name, score], ...]}

Event time is the trace's ``started_at``, capped at the gateway's ``received_at`` so that a
client clock running ahead cannot push a project's windows into the future.

Every number is checked here, at the alerter's input: an event time outside
[:data:`EARLIEST`, :data:`LATEST`] drops its point (a time of 1e308 would otherwise push a
project's watermark beyond every later record), a latency, cost or score that is not finite
becomes "none". :func:`checked_observation` does the same for messages read back from the
observations topic, so nothing malformed reaches the evaluator.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import orjson

EARLIEST = 946_684_800.0  # 2000-01-01: event times are epoch seconds
LATEST = 4_102_444_800.0  # 2100-01-01


class InvalidInputError(ValueError):
    """A record the alerter cannot read (it is skipped; the ingest-worker dead-letters traces)."""


def scope_key(tenant_id: str, project_id: str) -> str:
    return f"{tenant_id}|{project_id}"


def epoch(value: Any) -> float | None:
    """Epoch seconds of a number or an ISO 8601 text, within [EARLIEST, LATEST]; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value:
        try:
            seconds = datetime.fromisoformat(value).timestamp()
        except (ValueError, OverflowError, OSError):
            return None
    else:
        return None
    return seconds if EARLIEST <= seconds <= LATEST else None


def _number(value: Any) -> float | None:
    """A finite number, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _point(raw: Any) -> list[Any] | None:
    """``[event_ts, model, latency_ms|None, is_error 0/1, cost|None]`` checked, or None to drop it."""
    if not isinstance(raw, list) or len(raw) != 5:
        return None
    ts = epoch(raw[0]) if not isinstance(raw[0], str) else None
    if ts is None:
        return None
    model = raw[1] if isinstance(raw[1], str) else ""
    return [ts, model, _number(raw[2]), 1 if raw[3] else 0, _number(raw[4])]


def _score(raw: Any) -> list[Any] | None:
    """``[event_ts, model, metric_name, score]`` checked, or None to drop it."""
    if not isinstance(raw, list) or len(raw) != 4 or not isinstance(raw[2], str):
        return None
    ts = epoch(raw[0]) if not isinstance(raw[0], str) else None
    score = _number(raw[3])
    if ts is None or score is None:
        return None
    return [ts, raw[1] if isinstance(raw[1], str) else "", raw[2], score]


def checked_observation(message: Any) -> dict[str, Any]:
    """An observation message as the evaluator may trust it: ids are text, malformed points and
    scores are dropped. Raises :class:`InvalidInputError` when it is not an observation at all."""
    if not isinstance(message, dict):
        raise InvalidInputError("observation: not an object")
    tenant_id, project_id = message.get("tenant_id"), message.get("project_id")
    points, scores = message.get("points") or [], message.get("scores") or []
    if not isinstance(tenant_id, str) or not isinstance(project_id, str):
        raise InvalidInputError("observation without tenant_id/project_id")
    if not isinstance(points, list) or not isinstance(scores, list):
        raise InvalidInputError("observation: points/scores are not arrays")
    return {
        "tenant_id": tenant_id,
        "project_id": project_id,
        "points": [p for p in map(_point, points) if p is not None],
        "scores": [s for s in map(_score, scores) if s is not None],
    }


def _load(value: bytes | None) -> dict[str, Any]:
    if value is None:
        raise InvalidInputError("empty record")
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInputError("not an object")
    return data


def _message(groups: dict[str, dict[str, Any]], tenant_id: str, project_id: str) -> dict[str, Any]:
    key = scope_key(tenant_id, project_id)
    message = groups.get(key)
    if message is None:
        message = groups[key] = {"tenant_id": tenant_id, "project_id": project_id, "points": [], "scores": []}
    return message


def observations_from_traces(value: bytes | None) -> dict[str, dict[str, Any]]:
    """``scope key → observation message`` for one ``trulayer.traces`` envelope."""
    envelope = _load(value)
    tenant_id = envelope.get("tenant_id")
    received = epoch(envelope.get("received_at"))
    payload = envelope.get("payload")
    traces = payload.get("traces") if isinstance(payload, dict) else None
    if not isinstance(tenant_id, str) or received is None or not isinstance(traces, list):
        raise InvalidInputError("not a trace envelope")
    groups: dict[str, dict[str, Any]] = {}
    for trace in traces:
        if not isinstance(trace, dict):
            continue
        project_id = trace.get("project_id") or envelope.get("project_id")
        if not isinstance(project_id, str):
            continue
        started = epoch(trace.get("started_at"))
        event_ts = received if started is None else min(started, received)
        model = trace.get("model") if isinstance(trace.get("model"), str) else ""
        is_error = 1 if trace.get("error") else 0
        point = [event_ts, model, _number(trace.get("latency_ms")), is_error, _number(trace.get("cost"))]
        _message(groups, tenant_id, project_id)["points"].append(point)
    return groups


def observations_from_points(header: bytes) -> dict[str, dict[str, Any]]:
    """``scope key → observation message`` from a record's ``POINTS_HEADER`` (the gateway's
    summary of the record; same observations as :func:`observations_from_traces` of its value)."""
    data = _load(header)
    tenant_id = data.get("tenant_id")
    groups = data.get("groups")
    if not isinstance(tenant_id, str) or not isinstance(groups, dict):
        raise InvalidInputError("not a points header")
    out: dict[str, dict[str, Any]] = {}
    for project_id, points in groups.items():
        if project_id and isinstance(points, list):
            checked = [p for p in map(_point, points) if p is not None]
            if checked:
                _message(out, tenant_id, project_id)["points"] = checked
    return out


def observations_from_evaluations(value: bytes | None) -> dict[str, dict[str, Any]]:
    """``scope key → observation message`` for one ``trulayer.eval.results`` record.

    Accepts an envelope ``{tenant_id, project_id, received_at, payload: {evaluations: [...]}}``
    or one bare evaluation ``{tenant_id, project_id, metric_name, score, created_at, model}``.
    Evaluations without a numeric score (pending, failed, skipped) carry no observation.
    """
    data = _load(value)
    payload = data.get("payload")
    items = payload.get("evaluations") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        items = [data]
    tenant_id = data.get("tenant_id")
    if not isinstance(tenant_id, str):
        raise InvalidInputError("evaluation without tenant_id")
    received = epoch(data.get("received_at"))
    groups: dict[str, dict[str, Any]] = {}
    for item in items:
        if not isinstance(item, dict):
            continue
        project_id = item.get("project_id") or data.get("project_id")
        metric = item.get("metric_name")
        score = _number(item.get("score"))
        if not isinstance(project_id, str) or not isinstance(metric, str) or score is None:
            continue
        created = epoch(item.get("created_at")) or received
        if created is None:
            continue
        event_ts = min(created, received) if received is not None else created
        model = item.get("model") if isinstance(item.get("model"), str) else ""
        _message(groups, tenant_id, project_id)["scores"].append([event_ts, model, metric, score])
    return groups
