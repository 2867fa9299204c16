"""The pure transforms from input records to observations, grouped per tenant × project.

An observation message (the value of the internal ``<app>-observations`` topic, keyed
``tenant|project`` so that one project's state lives on one partition) is::

    {"tenant_id", "project_id",
     "points": [[event_ts, model, latency_ms | null, is_error 0/1, cost | null], ...],
     "scores": [[event_ts, model, metric_name, score], ...]}

Records are decoded by their topic modules (``topics.traces``: the points header, or the record
when it came without one; ``topics.eval_results``), which raise
:class:`~trulayer_common.topics.InvalidRecordError` for what cannot be read. Event time is the
trace's ``started_at`` (an evaluation's ``created_at``), capped at the gateway's
``received_at`` so that a client clock running ahead cannot push a project's windows into the
future.

Every number is also checked for sense here, at the alerter's input: a point or score whose
event time lies outside [:data:`EARLIEST`, :data:`LATEST`] is dropped (a time of 1e308 would
otherwise push a project's watermark beyond every later record), and a latency, cost or score
that is not finite becomes "none". :func:`checked_observation` does the same for messages read
back from the observations topic, so nothing malformed reaches the evaluator.
"""

from __future__ import annotations

import math
from typing import Any

from trulayer_common.topics import InvalidRecordError, eval_results, traces

EARLIEST = 946_684_800.0  # 2000-01-01: event times are epoch seconds
LATEST = 4_102_444_800.0  # 2100-01-01


def scope_key(tenant_id: str, project_id: str) -> str:
    return f"{tenant_id}|{project_id}"


def _message(groups: dict[str, dict[str, Any]], tenant_id: str, project_id: str) -> dict[str, Any]:
    key = scope_key(tenant_id, project_id)
    message = groups.get(key)
    if message is None:
        message = groups[key] = {"tenant_id": tenant_id, "project_id": project_id, "points": [], "scores": []}
    return message


def _time(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if EARLIEST <= value <= LATEST else None


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
    ts = _time(raw[0])
    if ts is None:
        return None
    model = raw[1] if isinstance(raw[1], str) else ""
    return [ts, model, _number(raw[2]), 1 if raw[3] else 0, _number(raw[4])]


def _score(raw: Any) -> list[Any] | None:
    """``[event_ts, model, metric_name, score]`` checked, or None to drop it."""
    if not isinstance(raw, list) or len(raw) != 4 or not isinstance(raw[2], str):
        return None
    ts, score = _time(raw[0]), _number(raw[3])
    if ts is None or score is None:
        return None
    return [ts, raw[1] if isinstance(raw[1], str) else "", raw[2], score]


def checked_observation(message: Any) -> dict[str, Any]:
    """An observation message as the evaluator may trust it: ids are text, malformed points and
    scores are dropped. Raises ``InvalidRecordError`` when it is not an observation at all."""
    if not isinstance(message, dict):
        raise InvalidRecordError("observation: not an object")
    tenant_id, project_id = message.get("tenant_id"), message.get("project_id")
    points, scores = message.get("points") or [], message.get("scores") or []
    if not isinstance(tenant_id, str) or not isinstance(project_id, str):
        raise InvalidRecordError("observation without tenant_id/project_id")
    if not isinstance(points, list) or not isinstance(scores, list):
        raise InvalidRecordError("observation: points/scores are not arrays")
    return {
        "tenant_id": tenant_id,
        "project_id": project_id,
        "points": [p for p in map(_point, points) if p is not None],
        "scores": [s for s in map(_score, scores) if s is not None],
    }


def _from_points(summary: traces.Points) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for project_id, points in summary["groups"].items():
        checked = [p for p in map(_point, points) if p is not None]
        if project_id and checked:
            _message(out, summary["tenant_id"], project_id)["points"] = checked
    return out


def observations_from_points(header: bytes) -> dict[str, dict[str, Any]]:
    """``scope key → observation message`` from a record's points header (the gateway's summary
    of the record; the same observations as :func:`observations_from_traces` of its value)."""
    return _from_points(traces.decode_points(header))


def observations_from_traces(value: bytes | None) -> dict[str, dict[str, Any]]:
    """``scope key → observation message`` for one ``trulayer.traces`` record."""
    return _from_points(traces.points_of(traces.decode(value)))


def observations_from_evaluations(value: bytes | None) -> dict[str, dict[str, Any]]:
    """``scope key → observation message`` for one ``trulayer.eval.results`` record (a batch of
    evaluation states); a state without a score (pending, running, failed, skipped) carries no
    observation."""
    envelope = eval_results.decode(value)
    received = envelope.received_at.timestamp()
    groups: dict[str, dict[str, Any]] = {}
    for evaluation in envelope.payload.evaluations:
        if evaluation.score is None:
            continue
        event_ts = min(evaluation.created_at.timestamp(), received)
        score = _score([event_ts, evaluation.model, evaluation.metric_name, evaluation.score])
        if score is None:
            continue
        _message(groups, envelope.tenant_id, evaluation.project_id)["scores"].append(score)
    return groups
