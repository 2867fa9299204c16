"""Eval rules on ``trulayer.traces``: the batching consumer loop of ``libs/common`` with
:class:`RuleMatcher` as its transform and :class:`RuleSink` as its sink.

The sink takes each tenant's share of its plan's monthly eval quota for the evaluations the
rules sampled (those beyond it become terminal ``skipped`` states saying so), produces the
evaluation states (batched) and the LLM requests, waits for every acknowledgement, then adds
the rules' counters. Only then does the loop commit the trace records' offsets. A group of its
own, started at the end of the topic when new: rules apply to traces received after them.
Redis down (quota, counters): fail open.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from eval_engine.results import Publisher
from eval_engine.rule_matcher import RuleMatcher, RuleOutput
from eval_engine.settings import EvalEngineSettings
from trulayer_common.config import ConfigState
from trulayer_common.consumer import BatchingConsumer, BatchPolicy
from trulayer_common.evals.counters import CounterDeltas, RuleCounters
from trulayer_common.evals.quota import EvalQuota
from trulayer_common.logging import get_logger
from trulayer_common.topics import eval_results, traces

log = get_logger(__name__)
RULE_EVALUATIONS = Counter("trulayer_eval_engine_rule_evaluations_total", "evaluation states produced by eval rules")
QUOTA_SKIPPED = Counter("trulayer_eval_engine_quota_skipped_total", "rule evaluations skipped: monthly quota used up")
QUOTA_ERROR = "monthly eval quota exhausted"


def apply_quota(output: RuleOutput, granted: int, now: datetime) -> None:
    """Keep the first ``granted`` sampled evaluations of ``output``; the rest become terminal
    ``skipped`` states (their requests dropped, their counters moved to ``skipped``)."""
    kept = 0
    dropped: set[str] = set()
    for index, evaluation in enumerate(output.evaluations):
        if kept < granted:
            kept += 1
            continue
        rule_id = evaluation.rule_id or ""
        if evaluation.status == "complete":
            output.deltas.add(rule_id, "evaluated", -1)
        elif evaluation.status == "failed":
            output.deltas.add(rule_id, "failed", -1)
        output.deltas.add(rule_id, "skipped")
        dropped.add(evaluation.id)
        output.evaluations[index] = evaluation.model_copy(
            update={
                "status": "skipped",
                "score": None,
                "label": None,
                "reasoning": None,
                "error": QUOTA_ERROR,
                "completed_at": now,
                "version": evaluation.version or eval_results.state_version(0, "skipped"),
            }
        )
    if dropped:
        QUOTA_SKIPPED.inc(len(dropped))
        output.requests = [(p, r) for p, r in output.requests if r.eval_id not in dropped]


RECORD_FAULTS = (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError, CorruptRecordException)


class RuleSink:
    name = "Kafka"

    def __init__(
        self, settings: EvalEngineSettings, config: ConfigState, producer: AIOKafkaProducer, redis: Redis
    ) -> None:
        self._settings = settings
        self._config = config
        self._producer = producer
        self._publisher = Publisher(producer)
        self._counters = RuleCounters(redis)
        self._quota = EvalQuota(redis) if settings.limits_enabled else None

    def size(self, item: RuleOutput) -> int:
        return max(len(item.evaluations), 1)

    async def _take_quota(self, output: RuleOutput) -> None:
        tenant = self._config.tenants.get(output.tenant_id)
        if self._quota is None or tenant is None or not output.evaluations:
            return
        limit = self._settings.plans.for_tenant(tenant).monthly_evals
        if limit is None:
            return
        try:
            taken = await self._quota.take(tenant.id, limit, len(output.evaluations), all_or_none=False)
        except RedisError as exc:
            log.warning("eval_quota_fail_open", tenant_id=tenant.id, error=repr(exc))
            return
        if taken.granted < len(output.evaluations):
            apply_quota(output, taken.granted, datetime.now(UTC))

    async def write(self, items: Sequence[RuleOutput]) -> None:
        merged: dict[str, RuleOutput] = {}
        for item in items:
            into = merged.setdefault(item.tenant_id, RuleOutput(item.tenant_id))
            into.evaluations.extend(item.evaluations)
            into.requests.extend(item.requests)
            into.deltas.merge(item.deltas)
        for output in merged.values():
            await self._take_quota(output)
        await asyncio.gather(
            *(self._publisher.publish(o.tenant_id, o.evaluations, o.requests) for o in merged.values() if o.evaluations)
        )
        RULE_EVALUATIONS.inc(sum(len(o.evaluations) for o in merged.values()))
        deltas = CounterDeltas()
        for output in merged.values():
            deltas.merge(output.deltas)
        try:
            await self._counters.add(deltas)
        except RedisError as exc:
            log.warning("eval_rule_counters_failed", error=repr(exc))

    async def available(self) -> bool:
        return bool(self._producer.client.cluster.brokers())

    def refuses_record(self, error: Exception) -> bool:
        """Only a record the broker cannot take whatever its state (too large) is the record's
        fault; a broker that does not acknowledge is waited out (``trulayer_common.consumer``)."""
        return isinstance(error, RECORD_FAULTS)


def rule_stream(
    settings: EvalEngineSettings, config: ConfigState, producer: AIOKafkaProducer, redis: Redis
) -> BatchingConsumer[RuleOutput]:
    return BatchingConsumer(
        settings,
        name="eval-rules",
        topic=traces.TOPIC,
        group_id=settings.eval_rules_group_id,
        transform=RuleMatcher(config),
        sink=RuleSink(settings, config, producer, redis),
        policy=BatchPolicy(
            max_size=settings.rules_batch_max,
            max_wait_ms=settings.rules_batch_wait_ms,
            dlq_max_per_minute=settings.dlq_max_per_minute,
            auto_offset_reset="latest",
        ),
    )
