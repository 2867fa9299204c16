"""The pure transforms of the quality records: ``trulayer.feedback`` → ``feedback`` rows and
``trulayer.eval.results`` → ``evaluations`` rows (one row per evaluation state; the table keeps
the highest ``version``). No I/O; a record that cannot be decoded raises
:class:`~trulayer_common.topics.InvalidRecordError` (the consumer loop dead-letters it).

Times are written as RFC 3339 text (the engine parses them, ``best_effort``); ``metadata`` and
an evaluator's ``config`` as JSON text; the judge's prompt as its JSON messages.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from trulayer_common.clickhouse.table_sink import TableRows
from trulayer_common.topics import eval_results, feedback
from trulayer_common.topics.envelope import json_text


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def feedback_rows(value: bytes | None, default_retention_days: int) -> TableRows:
    envelope = feedback.decode(value)
    item = envelope.payload
    row = {
        "tenant_id": envelope.tenant_id,
        "project_id": envelope.project_id,
        "trace_id": item.trace_id,
        "id": item.id,
        "label": item.label,
        "score": item.score,
        "comment": item.comment,
        "metadata": json_text(item.metadata, "metadata"),
        "request_id": envelope.request_id,
        "created_at": _time(item.created_at),
        "retention_days": item.retention_days or default_retention_days,
    }
    return {"feedback": [row]}


def _evaluation_row(tenant_id: str, item: eval_results.Evaluation, default_days: int) -> dict[str, Any]:
    judge = item.judge
    return {
        "tenant_id": tenant_id,
        "project_id": item.project_id,
        "trace_id": item.trace_id,
        "id": item.id,
        "rule_id": item.rule_id or "",
        "metric_name": item.metric_name,
        "evaluator_type": item.evaluator_type,
        "status": item.status,
        "score": item.score,
        "label": item.label or "",
        "reasoning": item.reasoning,
        "error": item.error,
        "attempts": item.attempts,
        "judge_model": judge.model if judge else "",
        "judge_input_tokens": judge.input_tokens if judge else 0,
        "judge_output_tokens": judge.output_tokens if judge else 0,
        "judge_cost": judge.cost if judge else 0.0,
        "judge_prompt": json_text([m.model_dump() for m in judge.prompt], "judge.prompt")
        if judge and judge.prompt
        else "",
        "config": json_text(item.config, "config"),
        "model": item.model,
        "created_at": _time(item.created_at),
        "completed_at": _time(item.completed_at),
        "next_attempt_at": _time(item.next_attempt_at),
        "updated_at": _time(item.updated_at or item.completed_at or item.created_at),
        "version": item.version,
        "retention_days": item.retention_days or default_days,
    }


def evaluation_rows(value: bytes | None, default_retention_days: int) -> TableRows:
    envelope = eval_results.decode(value)
    tenant = envelope.tenant_id
    return {"evaluations": [_evaluation_row(tenant, e, default_retention_days) for e in envelope.payload.evaluations]}
