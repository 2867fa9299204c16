"""Evaluation and feedback rows as the API answers them, and the feedback and evaluations of one
trace (``GET /v1/traces/{id}``). Evaluations are stored once per state; ``FINAL`` keeps each
one's latest (highest version)."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.params import iso
from trulayer_common.clickhouse import ClickHouse

COLUMNS = (
    "id, trace_id, project_id, metric_name, evaluator_type, status, score, label, reasoning, attempts, "
    "judge_model, judge_input_tokens, judge_output_tokens, judge_cost, created_at, completed_at, rule_id, error, "
    "next_attempt_at"
)


def evaluation_json(row: dict[str, Any], *, detail: bool = False) -> dict[str, Any]:
    judge: dict[str, Any] | None = None
    if row["judge_model"]:
        judge = {
            "model": row["judge_model"],
            "input_tokens": row["judge_input_tokens"],
            "output_tokens": row["judge_output_tokens"],
            "cost": round(float(row["judge_cost"]), 8),
        }
        if detail:
            judge["prompt"] = orjson.loads(row["judge_prompt"]) if row["judge_prompt"] else None
    out = {
        "id": row["id"],
        "trace_id": row["trace_id"],
        "project_id": row["project_id"],
        "metric_name": row["metric_name"],
        "evaluator_type": row["evaluator_type"],
        "status": row["status"],
        "score": row["score"],
        "label": row["label"] or None,
        "reasoning": row["reasoning"],
        "attempts": row["attempts"],
        "judge": judge,
        "created_at": iso(row["created_at"]),
        "completed_at": iso(row["completed_at"]),
        "rule_id": row["rule_id"] or None,
        "error": row["error"],
        "next_attempt_at": iso(row["next_attempt_at"]),
    }
    if detail:
        out["config"] = orjson.loads(row["config"]) if row["config"] else {}
    return out


def feedback_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "trace_id": row["trace_id"],
        "project_id": row["project_id"],
        "label": row["label"],
        "score": row["score"],
        "comment": row["comment"],
        "metadata": orjson.loads(row["metadata"]) if row["metadata"] else {},
        "created_at": iso(row["created_at"]),
    }


async def trace_quality(
    ch: ClickHouse, tenant_id: str, project_id: str, trace_id: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(feedback, evaluations) of one trace, oldest first."""
    key = {"tenant": tenant_id, "project": project_id, "trace": trace_id}
    scope = "tenant_id = {tenant:String} AND project_id = {project:String} AND trace_id = {trace:String}"
    feedback = await ch.query(
        "SELECT id, trace_id, project_id, label, score, comment, metadata, created_at "
        f"FROM {ch.database}.feedback FINAL WHERE {scope} ORDER BY created_at, id",
        key,
        quick=True,
    )
    evaluations = await ch.query(
        f"SELECT {COLUMNS} FROM {ch.database}.evaluations FINAL WHERE {scope} ORDER BY created_at, id",
        key,
        quick=True,
    )
    return [feedback_json(r) for r in feedback], [evaluation_json(r) for r in evaluations]
