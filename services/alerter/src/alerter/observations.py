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
"""

from __future__ import annotations

from typing import Any

from trulayer_common.topics import eval_results, traces


def scope_key(tenant_id: str, project_id: str) -> str:
    return f"{tenant_id}|{project_id}"


def _message(groups: dict[str, dict[str, Any]], tenant_id: str, project_id: str) -> dict[str, Any]:
    key = scope_key(tenant_id, project_id)
    message = groups.get(key)
    if message is None:
        message = groups[key] = {"tenant_id": tenant_id, "project_id": project_id, "points": [], "scores": []}
    return message


def _from_points(summary: traces.Points) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for project_id, points in summary["groups"].items():
        if project_id and points:
            _message(out, summary["tenant_id"], project_id)["points"] = points
    return out


def observations_from_points(header: bytes) -> dict[str, dict[str, Any]]:
    """``scope key → observation message`` from a record's points header (the gateway's summary
    of the record; the same observations as :func:`observations_from_traces` of its value)."""
    return _from_points(traces.decode_points(header))


def observations_from_traces(value: bytes | None) -> dict[str, dict[str, Any]]:
    """``scope key → observation message`` for one ``trulayer.traces`` record."""
    return _from_points(traces.points_of(traces.decode(value)))


def observations_from_evaluations(value: bytes | None) -> dict[str, dict[str, Any]]:
    """``scope key → observation message`` for one ``trulayer.eval.results`` record; an
    evaluation without a score (pending, running, failed, skipped) carries no observation."""
    envelope = eval_results.decode(value)
    evaluation = envelope.payload
    if evaluation.score is None:
        return {}
    event_ts = min(evaluation.created_at.timestamp(), envelope.received_at.timestamp())
    groups: dict[str, dict[str, Any]] = {}
    score = [event_ts, evaluation.model, evaluation.metric_name, evaluation.score]
    _message(groups, envelope.tenant_id, evaluation.project_id)["scores"].append(score)
    return groups
