"""Eval rules on the trace stream: the pure transform from one ``trulayer.traces`` record to the
evaluations its tenant's rules ask for.

For each trace of the record and each enabled rule of the trace's project (enabled before the
record was received): the filter (model, name, tags, metadata equality) decides ``matched``;
the sample rate decides ``sampled``, by a hash of the trace id alone, so a lower rate picks a
subset of what a higher one picks (and two rules at one rate pick the same traces). Sampled
deterministic evaluations run here, inline (they are pure and bounded); sampled LLM ones become
a ``pending`` state and a request for the request runner.

Cheap when nothing matches: with no eval rule anywhere the record is not looked at; otherwise
the gateway's points header (``topics.traces.POINTS_HEADER``) names the tenant and projects,
and the record is parsed only when one of their rules is enabled.

Evaluation ids derive from the rule and the trace (:func:`evaluation_id`), so a record read
again after a crash produces the same evaluations, which storage replaces.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter

from eval_engine.evaluators.registry import DETERMINISTIC
from eval_engine.evaluators.verdict import EvaluationError, Verdict
from eval_engine.results import state
from eval_engine.trace_view import TraceView, from_record
from trulayer_common.config import ConfigState
from trulayer_common.config.entities import EvalRule, EvalRuleFilter
from trulayer_common.evals.catalog import InvalidConfigError, UnknownMetricError, resolve
from trulayer_common.evals.counters import CounterDeltas
from trulayer_common.logging import get_logger
from trulayer_common.topics import InvalidRecordError, traces
from trulayer_common.topics.eval_requests import EvalRequest
from trulayer_common.topics.eval_results import Evaluation, Status

log = get_logger(__name__)
SKIPPED_RECORDS = Counter(
    "trulayer_eval_engine_trace_records_unreadable_total", "trace records the rules could not read"
)
_SCALE = float(2**64)


def sample_point(trace_id: str) -> float:
    """Where ``trace_id`` falls in [0, 1): the same for every rule and every replica."""
    digest = hashlib.blake2b(trace_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def is_sampled(trace_id: str, rate: float) -> bool:
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    return sample_point(trace_id) < rate


def evaluation_id(rule_id: str, trace_id: str) -> str:
    h = hashlib.blake2b(f"{rule_id}\x00{trace_id}".encode(), digest_size=16).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _has_tag(tags: Any, tag: str) -> bool:
    return tag in tags if isinstance(tags, list | dict) else False


def _has_pair(tags: Any, key: str, value: str) -> bool:
    if isinstance(tags, dict):
        return tags.get(key) == value
    return isinstance(tags, list) and f"{key}:{value}" in tags


def matches(rule_filter: EvalRuleFilter, trace: dict[str, Any]) -> bool:
    """Whether a trace of the record passes the rule's filter (every given field equal)."""
    if rule_filter.model is not None and trace.get("model") != rule_filter.model:
        return False
    if rule_filter.name is not None and trace.get("name") != rule_filter.name:
        return False
    wanted = rule_filter.tags
    if wanted:
        tags = trace.get("tags") or []
        if isinstance(wanted, list):
            if not all(_has_tag(tags, tag) for tag in wanted):
                return False
        elif not all(_has_pair(tags, k, v) for k, v in wanted.items()):
            return False
    if rule_filter.metadata:
        metadata = trace.get("metadata") or {}
        if not isinstance(metadata, dict):
            return False
        for key, value in rule_filter.metadata.items():
            if key not in metadata or metadata[key] != value or type(metadata[key]) is not type(value):
                return False
    return True


@dataclass
class RuleOutput:
    """What one record asks for: evaluation states, requests for the LLM ones, counter increments."""

    tenant_id: str
    evaluations: list[Evaluation] = field(default_factory=list)
    requests: list[tuple[str, EvalRequest]] = field(default_factory=list)
    deltas: CounterDeltas = field(default_factory=CounterDeltas)


@dataclass(frozen=True)
class _Compiled:
    evaluate: Callable[[TraceView, Any], Verdict] | None
    config: Any
    error: str | None


class RuleMatcher:
    def __init__(self, config: ConfigState) -> None:
        self._config = config
        self._compiled: dict[tuple[str, datetime | None], _Compiled] = {}

    def _tenant_rules(self, tenant_id: str, projects: Any) -> bool:
        return any(r.enabled and r.project_id in projects for r in self._config.eval_rules_of(tenant_id))

    def __call__(self, record: ConsumerRecord[bytes, bytes]) -> RuleOutput | None:
        if not self._config.eval_rules:
            return None
        header = next((v for k, v in record.headers or () if k == traces.POINTS_HEADER), None)
        if header is not None:
            try:
                summary = orjson.loads(header)
                if not self._tenant_rules(summary["tenant_id"], summary["groups"]):
                    return None
            except (orjson.JSONDecodeError, KeyError, TypeError):
                pass  # read the record itself
        try:
            envelope = traces.decode(record.value)
        except InvalidRecordError as exc:
            # The ingest-worker dead-letters it; the rules only skip it.
            SKIPPED_RECORDS.inc()
            log.warning("trace_record_unreadable", error=str(exc)[:300])
            return None
        return self.evaluate(envelope)

    def evaluate(self, envelope: traces.TraceEnvelope) -> RuleOutput | None:
        tenant_id = envelope["tenant_id"]
        try:
            received = datetime.fromisoformat(envelope["received_at"])
        except ValueError:
            return None
        by_project: dict[str, list[EvalRule]] = {}
        for rule in self._config.eval_rules_of(tenant_id):
            if rule.enabled and (rule.enabled_at or rule.created_at) <= received:
                by_project.setdefault(rule.project_id, []).append(rule)
        if not by_project:
            return None
        out = RuleOutput(tenant_id)
        now = datetime.now(UTC)
        matched: dict[str, int] = {}
        sampled: dict[str, int] = {}
        for record_trace in envelope["payload"]["traces"]:
            if not traces.counted(record_trace):
                continue  # an OTLP part without its trace's root: the root's part is evaluated
            trace = cast(dict[str, Any], record_trace)
            rules = by_project.get(trace["project_id"])
            if not rules:
                continue
            view: TraceView | None = None
            for rule in rules:
                if not matches(rule.filter, trace):
                    continue
                matched[rule.id] = matched.get(rule.id, 0) + 1
                if not is_sampled(trace["id"], rule.sample_rate):
                    continue
                sampled[rule.id] = sampled.get(rule.id, 0) + 1
                if rule.evaluator_type == "rule":
                    view = view or from_record(trace)
                    out.evaluations.append(self._run(rule, view, received, now, out.deltas))
                else:
                    self._ask(rule, trace, received, now, out)
        for rule_id, n in matched.items():
            out.deltas.add(rule_id, "matched", n)
        for rule_id, n in sampled.items():
            out.deltas.add(rule_id, "sampled", n)
        return out if out.evaluations or out.deltas else None

    def _compile(self, rule: EvalRule) -> _Compiled:
        key = (rule.id, rule.updated_at)
        compiled = self._compiled.get(key)
        if compiled is None:
            try:
                resolved = resolve(rule.metric_name, rule.evaluator_type, rule.config)
                compiled = _Compiled(DETERMINISTIC[resolved.entry.name], resolved.config, None)
            except (UnknownMetricError, InvalidConfigError) as exc:
                compiled = _Compiled(None, None, str(exc))
            if len(self._compiled) > 10_000:
                self._compiled.clear()
            self._compiled[key] = compiled
        return compiled

    def _retention(self, project_id: str) -> int | None:
        project = self._config.projects.get(project_id)
        return project.retention_days_override if project is not None else None

    def _run(
        self, rule: EvalRule, view: TraceView, received: datetime, now: datetime, deltas: CounterDeltas
    ) -> Evaluation:
        compiled = self._compile(rule)
        verdict: Verdict | None = None
        error = compiled.error
        if compiled.evaluate is not None:
            try:
                verdict = compiled.evaluate(view, compiled.config)
            except EvaluationError as exc:
                error = str(exc)
            except Exception as exc:  # an evaluator bug must not stop the stream
                log.exception("evaluator_failed", metric=rule.metric_name, rule_id=rule.id)
                error = f"evaluator error: {type(exc).__name__}"
        status: Status = "complete" if verdict is not None else "failed"
        deltas.add(rule.id, "evaluated" if verdict is not None else "failed")
        deltas.evaluated_at(rule.id, now)
        return state(
            eval_id=evaluation_id(rule.id, view.id),
            trace_id=view.id,
            project_id=view.project_id,
            metric_name=rule.metric_name,
            evaluator_type="rule",
            status=status,
            attempt=1,
            created_at=received,
            now=now,
            model=view.model,
            rule_id=rule.id,
            config=rule.config,
            score=verdict.score if verdict else None,
            label=verdict.label if verdict else None,
            reasoning=verdict.reasoning if verdict else None,
            error=error,
            attempts=1,
            retention_days=self._retention(view.project_id),
        )

    def _ask(self, rule: EvalRule, trace: dict[str, Any], received: datetime, now: datetime, out: RuleOutput) -> None:
        eval_id = evaluation_id(rule.id, trace["id"])
        model = trace.get("model") or ""
        out.evaluations.append(
            state(
                eval_id=eval_id,
                trace_id=trace["id"],
                project_id=trace["project_id"],
                metric_name=rule.metric_name,
                evaluator_type="llm",
                status="pending",
                attempt=0,
                created_at=received,
                now=now,
                model=model,
                rule_id=rule.id,
                config=rule.config,
                retention_days=self._retention(trace["project_id"]),
            )
        )
        request = EvalRequest.model_construct(
            eval_id=eval_id,
            trace_id=trace["id"],
            metric_name=rule.metric_name,
            evaluator_type="llm",
            config=rule.config,
            rule_id=rule.id,
            attempt=1,
            not_before=None,
            created_at=received,
            calls=0,
            skipped=False,
            model=model,
        )
        out.requests.append((trace["project_id"], request))
