"""Evaluation states (``trulayer.eval.results`` records) built from what happened, and the
publisher that produces them with the re-enqueued requests and waits for the acknowledgements.

The builders are pure: :func:`state` fills the version (``state_version(attempt, status)``),
so a later state always replaces an earlier one in storage, whatever order they arrive in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from aiokafka import AIOKafkaProducer

from eval_engine.evaluators.verdict import Label
from trulayer_common.topics import eval_requests, eval_results
from trulayer_common.topics.eval_results import Evaluation, Judge, JudgeMessage, Status

RESULTS_PER_RECORD = 500


def state(
    *,
    eval_id: str,
    trace_id: str,
    project_id: str,
    metric_name: str,
    evaluator_type: Literal["llm", "rule"],
    status: Status,
    attempt: int,
    created_at: datetime,
    now: datetime,
    model: str = "",
    rule_id: str | None = None,
    config: dict[str, Any] | None = None,
    score: float | None = None,
    label: Label | None = None,
    reasoning: str | None = None,
    error: str | None = None,
    attempts: int = 0,
    judge: Judge | None = None,
    next_attempt_at: datetime | None = None,
    retention_days: int | None = None,
) -> Evaluation:
    """One state of an evaluation. Built without validation (the engine's own values, and this
    runs per trace on the rule stream); the unit tests check it validates."""
    terminal = status in ("complete", "failed") or (status == "skipped" and next_attempt_at is None)
    return Evaluation.model_construct(
        id=eval_id,
        trace_id=trace_id,
        project_id=project_id,
        metric_name=metric_name,
        evaluator_type=evaluator_type,
        status=status,
        score=score,
        label=label,
        reasoning=reasoning,
        attempts=attempts,
        judge=judge,
        created_at=created_at,
        completed_at=now if terminal else None,
        model=model,
        rule_id=rule_id,
        error=error,
        next_attempt_at=next_attempt_at,
        config=config or {},
        version=eval_results.state_version(attempt, status),
        updated_at=now,
        retention_days=retention_days,
    )


def judge_of(model: str, input_tokens: int, output_tokens: int, cost: float, prompt: list[dict[str, str]]) -> Judge:
    return Judge.model_construct(
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost=cost,
        prompt=[JudgeMessage.model_construct(role=m["role"], content=m["content"]) for m in prompt],
    )


class Publisher:
    """Produces evaluation states (batched per tenant) and requests; returns once every record is
    acknowledged (acks=all), raising the producer's error otherwise."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer

    async def publish(
        self,
        tenant_id: str,
        evaluations: Sequence[Evaluation],
        requests: Sequence[tuple[str, eval_requests.EvalRequest]] = (),
    ) -> None:
        """``requests``: ``(project_id, request)`` pairs."""
        sends = []
        for start in range(0, len(evaluations), RESULTS_PER_RECORD):
            chunk = list(evaluations[start : start + RESULTS_PER_RECORD])
            value = eval_results.encode(chunk, tenant_id=tenant_id)
            sends.append(await self._producer.send(eval_results.TOPIC, value=value, key=eval_results.key(chunk)))
        for project_id, request in requests:
            value = eval_requests.encode(request, tenant_id=tenant_id, project_id=project_id, request_id="")
            sends.append(await self._producer.send(eval_requests.TOPIC, value=value, key=eval_requests.key(request)))
        if sends:
            await asyncio.gather(*sends)
