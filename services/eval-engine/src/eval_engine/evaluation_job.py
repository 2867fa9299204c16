"""Running one evaluation request (``trulayer.eval.requests``) to its next state.

:meth:`EvaluationRunner.run` resolves the evaluator (a bad or unknown one: ``failed``), loads
the trace (not stored yet: the job is held and retried until ``TRACE_WAIT_SECONDS`` after its
creation, then ``failed``), and evaluates:

* deterministic: ``complete`` (or ``failed`` when the trace lacks what it needs);
* LLM judge: ``running`` first, then ``complete`` with the judge's verdict, tokens, cost and
  prompt; ``failed`` with the reason when the judge kept answering 5xx or malformed output (its
  attempts and cost recorded); ``skipped`` when it could not be reached: re-enqueued on
  ``trulayer.eval.requests`` with ``not_before`` (exponential backoff), until
  ``EVAL_MAX_AGE_SECONDS`` after creation, when the skip becomes terminal. A job is never
  terminal before its last attempt.

It returns once every state (and the re-enqueued request) is acknowledged by the broker; only
then may the request's offset be committed. It then marks the job done in Redis (so a restart
that redelivers it does not run it again) and updates the rule's counters, both fail-open.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiokafka import TopicPartition
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from eval_engine.evaluators.registry import DETERMINISTIC, JUDGES
from eval_engine.evaluators.verdict import EvaluationError, Verdict
from eval_engine.judge_client import JudgeClient, JudgeFailedError, JudgeUnreachableError, Usage
from eval_engine.results import Publisher, judge_of, state
from eval_engine.settings import EvalEngineSettings
from eval_engine.trace_store import TraceLoader
from trulayer_common.config import ConfigState
from trulayer_common.evals.catalog import InvalidConfigError, UnknownMetricError, resolve
from trulayer_common.evals.configs import JudgeConfig
from trulayer_common.evals.counters import CounterDeltas, RuleCounters
from trulayer_common.logging import get_logger
from trulayer_common.topics.eval_requests import EvalRequest
from trulayer_common.topics.eval_results import Evaluation, Status

log = get_logger(__name__)
OUTCOMES = Counter(
    "trulayer_eval_engine_evaluations_total", "evaluation runs by outcome", ["outcome", "evaluator_type"]
)
TRACE_RETRY_SECONDS = 2.0


@dataclass
class Job:
    """One request read from the topic, with where it came from."""

    tp: TopicPartition
    offset: int
    tenant_id: str
    project_id: str
    request: EvalRequest
    created_at: datetime
    due: float  # epoch seconds: when it may run

    @property
    def done_key(self) -> str:
        return f"tl:eval:done:{self.request.eval_id}:{self.request.attempt}"


class EvaluationRunner:
    def __init__(
        self,
        settings: EvalEngineSettings,
        config: ConfigState,
        loader: TraceLoader,
        judge: JudgeClient,
        publisher: Publisher,
        redis: Redis,
    ) -> None:
        self._settings = settings
        self._config = config
        self._loader = loader
        self._judge = judge
        self._publisher = publisher
        self._redis = redis
        self._counters = RuleCounters(redis)

    async def already_done(self, job: Job) -> bool:
        try:
            return bool(await self._redis.exists(job.done_key))
        except RedisError as exc:
            log.warning("eval_done_check_failed", error=repr(exc))
            return False

    async def run(self, job: Job) -> float | None:
        """Run ``job``; returns when to run it again (epoch seconds) when its trace is not stored
        yet, else ``None`` (its states are durable). Raises when publishing failed."""
        request = job.request
        now = datetime.now(UTC)
        try:
            resolved = resolve(request.metric_name, request.evaluator_type, request.config)
        except (UnknownMetricError, InvalidConfigError) as exc:
            await self._finish(job, [self._state(job, "failed", now, error=str(exc), attempts=request.calls)])
            return None
        trace = await self._loader.get(job.tenant_id, request.trace_id)
        if trace is None:
            if (now - job.created_at).total_seconds() < self._settings.trace_wait_seconds:
                return time.time() + TRACE_RETRY_SECONDS
            error = f"trace '{request.trace_id}' not found"
            await self._finish(job, [self._state(job, "failed", now, error=error, attempts=request.calls)])
            return None
        entry = resolved.entry
        if entry.evaluator_type == "rule":
            try:
                verdict = DETERMINISTIC[entry.name](trace, resolved.config)
            except EvaluationError as exc:
                await self._finish(job, [self._state(job, "failed", now, error=str(exc), attempts=1)])
                return None
            await self._finish(job, [self._verdict_state(job, verdict, now, attempts=1)])
            return None
        config = resolved.config
        assert isinstance(config, JudgeConfig)
        try:
            messages = JUDGES[entry.name](trace, config, self._settings.judge_max_field_chars)
        except EvaluationError as exc:
            await self._finish(job, [self._state(job, "failed", now, error=str(exc), attempts=request.calls)])
            return None
        if not self._judge.configured:
            error = "no LLM judge is configured (JUDGE_BASE_URL)"
            await self._finish(job, [self._state(job, "failed", now, error=error, attempts=request.calls)])
            return None
        await self._publisher.publish(job.tenant_id, [self._state(job, "running", now, attempts=request.calls)])
        try:
            answer = await self._judge.judge(messages, config.model, config.threshold)
        except JudgeUnreachableError as exc:
            await self._skip(job, exc.reason, exc.usage, messages)
            return None
        except JudgeFailedError as exc:
            done = datetime.now(UTC)
            failed = self._state(
                job, "failed", done, error=exc.reason, attempts=request.calls + exc.usage.calls, usage=exc.usage
            )
            await self._finish(job, [self._with_prompt(failed, exc.usage, messages)])
            return None
        done = datetime.now(UTC)
        complete = self._verdict_state(
            job, answer.verdict, done, attempts=request.calls + answer.usage.calls, usage=answer.usage
        )
        await self._finish(job, [self._with_prompt(complete, answer.usage, messages)])
        return None

    async def _skip(self, job: Job, reason: str, usage: Usage, messages: list[dict[str, str]]) -> None:
        s, request = self._settings, job.request
        now = datetime.now(UTC)
        delay = min(s.eval_retry_base_seconds * 2 ** (request.attempt - 1), s.eval_retry_max_seconds)
        next_at = now + timedelta(seconds=delay)
        attempts = request.calls + usage.calls
        if next_at > job.created_at + timedelta(seconds=s.eval_max_age_seconds):
            error = f"gave up after {s.eval_max_age_seconds:g} s: {reason}"
            skipped = self._state(job, "skipped", now, error=error, attempts=attempts, usage=usage)
            await self._finish(job, [self._with_prompt(skipped, usage, messages)])
            return
        skipped = self._state(
            job, "skipped", now, error=reason, attempts=attempts, usage=usage, next_attempt_at=next_at
        )
        again = request.model_copy(
            update={"attempt": request.attempt + 1, "not_before": next_at, "calls": attempts, "skipped": True}
        )
        await self._finish(job, [self._with_prompt(skipped, usage, messages)], [(job.project_id, again)])

    def _state(
        self,
        job: Job,
        status: Status,
        now: datetime,
        *,
        error: str | None = None,
        attempts: int = 0,
        usage: Usage | None = None,
        next_attempt_at: datetime | None = None,
        verdict: Verdict | None = None,
    ) -> Evaluation:
        request = job.request
        project = self._config.projects.get(job.project_id)
        judge = None
        if usage is not None and usage.calls:
            judge = judge_of(usage.model, usage.input_tokens, usage.output_tokens, usage.cost, [])
        return state(
            eval_id=request.eval_id,
            trace_id=request.trace_id,
            project_id=job.project_id,
            metric_name=request.metric_name,
            evaluator_type=request.evaluator_type,
            status=status,
            attempt=request.attempt,
            created_at=job.created_at,
            now=now,
            model=request.model,
            rule_id=request.rule_id,
            config=request.config,
            score=verdict.score if verdict else None,
            label=verdict.label if verdict else None,
            reasoning=verdict.reasoning if verdict else None,
            error=error,
            attempts=attempts,
            judge=judge,
            next_attempt_at=next_attempt_at,
            retention_days=project.retention_days_override if project is not None else None,
        )

    def _verdict_state(
        self, job: Job, verdict: Verdict, now: datetime, *, attempts: int, usage: Usage | None = None
    ) -> Evaluation:
        return self._state(job, "complete", now, attempts=attempts, usage=usage, verdict=verdict)

    @staticmethod
    def _with_prompt(evaluation: Evaluation, usage: Usage, messages: list[dict[str, str]]) -> Evaluation:
        judge = judge_of(usage.model, usage.input_tokens, usage.output_tokens, usage.cost, messages)
        return evaluation.model_copy(update={"judge": judge})

    async def _finish(
        self,
        job: Job,
        states: list[Evaluation],
        again: list[tuple[str, EvalRequest]] | None = None,
    ) -> None:
        await self._publisher.publish(job.tenant_id, states, again or [])
        final = states[-1]
        OUTCOMES.labels(final.status, job.request.evaluator_type).inc()
        try:
            await self._redis.set(job.done_key, b"1", ex=int(self._settings.eval_max_age_seconds) + 86_400)
        except RedisError as exc:
            log.warning("eval_done_mark_failed", error=repr(exc))
        rule_id = job.request.rule_id
        if rule_id is None:
            return
        deltas = CounterDeltas()
        was_skipped = job.request.skipped
        if final.status in ("complete", "failed"):
            deltas.add(rule_id, "evaluated" if final.status == "complete" else "failed")
            deltas.evaluated_at(rule_id, final.completed_at or datetime.now(UTC))
            if was_skipped:
                deltas.add(rule_id, "skipped", -1)
        elif final.status == "skipped" and not was_skipped:
            deltas.add(rule_id, "skipped")
        try:
            await self._counters.add(deltas)
        except RedisError as exc:
            log.warning("eval_rule_counters_failed", error=repr(exc))
