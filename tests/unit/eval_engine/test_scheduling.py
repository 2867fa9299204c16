"""The request runner's pure parts: commit offsets of out-of-order work, fair per-tenant
scheduling, and the rule matcher (filters, sampling, ids, quota)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from eval_engine.fair_queue import FairQueue
from eval_engine.offsets import OffsetTracker
from eval_engine.rule_matcher import RuleMatcher, evaluation_id, is_sampled, matches, sample_point
from eval_engine.rule_stream import apply_quota
from trulayer_common.config import ConfigRecord, ConfigState, Project, Tenant
from trulayer_common.config.entities import EvalRule, EvalRuleFilter
from trulayer_common.topics import eval_results, traces
from trulayer_common.topics.eval_results import EvaluationBatch

TP = TopicPartition("t", 0)
NOW = datetime.now(UTC)


def test_offsets_commit_the_lowest_unfinished() -> None:
    tracker = OffsetTracker()
    for offset in (10, 11, 12):
        tracker.take(TP, offset)
    tracker.done(TP, 11)
    assert tracker.committable(TP) == 10  # 10 still runs: a restart must read it again
    tracker.done(TP, 10)
    assert tracker.committable(TP) == 12
    tracker.done(TP, 12)
    assert tracker.committable(TP) == 13 and tracker.open_count() == 0
    tracker.forget({TP})
    assert tracker.committable(TP) is None


def test_fair_queue_limits_each_tenant_and_takes_turns() -> None:
    queue: FairQueue[str] = FairQueue(total_limit=4, tenant_limit=2)
    for i in range(10):
        queue.push("flood", f"f{i}")
    queue.push("quiet", "q0")
    started = list(queue.take())
    assert started == [("flood", "f0"), ("quiet", "q0"), ("flood", "f1")]  # flood capped at 2
    assert list(queue.take()) == []
    queue.finished("flood")
    assert list(queue.take()) == [("flood", "f2")]
    dropped = queue.drop(lambda job: job != "f3")
    assert dropped == ["f3"] and len(queue) == 6


def _rule(**fields: Any) -> EvalRule:
    base: dict[str, Any] = {
        "id": "r1",
        "tenant_id": "t",
        "project_id": "p",
        "metric_name": "json_valid",
        "evaluator_type": "rule",
        "created_at": NOW - timedelta(hours=1),
    }
    return EvalRule(**{**base, **fields})


def test_filters() -> None:
    trace = {"model": "gpt-4o", "name": "chat", "tags": {"env": "prod"}, "metadata": {"tier": "gold", "n": 1}}
    assert matches(EvalRuleFilter(), trace)
    assert matches(EvalRuleFilter(model="gpt-4o", name="chat", tags={"env": "prod"}, metadata={"tier": "gold"}), trace)
    assert matches(EvalRuleFilter(tags=["env"]), trace)
    assert not matches(EvalRuleFilter(model="gpt-4"), trace)
    assert not matches(EvalRuleFilter(tags={"env": "dev"}), trace)
    assert not matches(EvalRuleFilter(metadata={"n": True}), trace)  # 1 is not True
    assert matches(EvalRuleFilter(tags={"env": "prod"}), {"tags": ["env:prod"]})


def test_sampling_is_deterministic_and_nested() -> None:
    ids = [f"trace-{i}" for i in range(5000)]
    assert all(0 <= sample_point(i) < 1 for i in ids)
    rates = (0.01, 0.1, 0.5, 0.9)
    chosen = [{i for i in ids if is_sampled(i, r)} for r in rates]
    for lower, higher in itertools.pairwise(chosen):
        assert lower <= higher
    assert 350 <= len(chosen[1]) <= 650  # ≈10 %
    assert evaluation_id("r1", "a") == evaluation_id("r1", "a") != evaluation_id("r2", "a")


def _state(*rules: EvalRule) -> ConfigState:
    state = ConfigState()
    state.apply(ConfigRecord(entity=Tenant(id="t", name="t", created_at=NOW), at=NOW))
    state.apply(ConfigRecord(entity=Project(id="p", tenant_id="t", name="default", created_at=NOW), at=NOW))
    for rule in rules:
        state.apply(ConfigRecord(entity=rule, at=NOW))
    return state


def _record(traces_: list[dict[str, Any]], tenant: str = "t", header: bool = True) -> ConsumerRecord[bytes, bytes]:
    completed = [{"project_id": "p", "started_at": NOW, **t} for t in traces_]
    value = traces.encode(tenant_id=tenant, project_id="p", received_at=NOW, request_id="", traces=completed)  # type: ignore[arg-type]
    headers = [(traces.POINTS_HEADER, traces.encode_points(tenant, NOW, completed))] if header else []  # type: ignore[arg-type]
    return ConsumerRecord("trulayer.traces", 0, 0, 0, 0, None, value, None, len(value), 0, headers)


def test_rule_matcher_evaluates_inline_and_counts() -> None:
    matcher = RuleMatcher(
        _state(_rule(filter=EvalRuleFilter(model="m")), _rule(id="r2", evaluator_type="llm", metric_name="toxicity"))
    )
    out = matcher(_record([{"id": "a", "model": "m", "output": "{}"}, {"id": "b", "model": "x", "output": "no"}]))
    assert out is not None
    by_rule = {(e.rule_id, e.trace_id): e for e in out.evaluations}
    assert by_rule[("r1", "a")].status == "complete" and by_rule[("r1", "a")].score == 1.0
    assert ("r1", "b") not in by_rule  # filtered out
    assert {by_rule[("r2", t)].status for t in "ab"} == {"pending"}
    assert [r.trace_id for _, r in out.requests] == ["a", "b"]
    assert out.deltas.counts == {"r1": {"evaluated": 1, "matched": 1, "sampled": 1}, "r2": {"matched": 2, "sampled": 2}}
    # The states are valid records, and the same record gives the same ids again.
    EvaluationBatch.model_validate_json(EvaluationBatch(evaluations=out.evaluations).model_dump_json())
    again = matcher(_record([{"id": "a", "model": "m", "output": "{}"}, {"id": "b", "model": "x", "output": "no"}]))
    assert again is not None and [e.id for e in again.evaluations] == [e.id for e in out.evaluations]


def test_rule_matcher_skips_without_parsing_when_no_rule_applies() -> None:
    unparseable = ConsumerRecord("trulayer.traces", 0, 0, 0, 0, None, b"not json", None, 8, 0, [])
    assert RuleMatcher(_state())(unparseable) is None  # no rule anywhere: not even looked at
    other_tenant = _record([{"id": "a"}], tenant="someone-else")
    with_rules = RuleMatcher(_state(_rule()))
    assert with_rules(other_tenant) is None
    disabled = RuleMatcher(_state(_rule(enabled=False)))
    assert disabled(_record([{"id": "a"}])) is None
    later = RuleMatcher(_state(_rule(created_at=NOW + timedelta(seconds=5))))
    assert later(_record([{"id": "a"}])) is None  # received before the rule existed
    assert with_rules(_record([{"id": "a", "output": "{}"}], header=False)) is not None


def test_quota_turns_the_excess_into_terminal_skips() -> None:
    matcher = RuleMatcher(_state(_rule(), _rule(id="r2", evaluator_type="llm", metric_name="toxicity")))
    out = matcher(_record([{"id": "a", "output": "{}"}]))
    assert out is not None and len(out.evaluations) == 2
    apply_quota(out, 1, NOW)
    kept, skipped = out.evaluations
    assert kept.status == "complete" and (skipped.status, skipped.error) == ("skipped", "monthly eval quota exhausted")
    assert skipped.version > 0 and out.requests == []
    assert out.deltas.counts["r2"]["skipped"] == 1
    record = orjson.loads(eval_results.encode(out.evaluations, tenant_id="t"))
    assert eval_results.decode(orjson.dumps(record)).payload.evaluations[1].status == "skipped"
