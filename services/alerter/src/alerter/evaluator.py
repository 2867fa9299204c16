"""The alerter's state transitions for one observation message, over plain mappings.

:meth:`Evaluator.process` updates one project's buckets, watermark and baselines and returns
what fired. It does no I/O: in the service the mappings are faust tables (changelogged,
partitioned like the observations topic); in unit tests they are dicts.

State keys (all for one ``tenant|project`` scope, hence on one partition):

* ``buckets``   ``tenant|project|model|bucket_start`` → :class:`BucketAgg` JSON (model ``""`` = all)
* ``meta``      ``tenant|project`` → ``{"wm": watermark, "lo": oldest bucket, "models": [...],
  "an": last closed anomaly bucket}``
* ``fired``     ``rule_id|project`` → event time of the rule's last firing (the cooldown)
* ``baselines`` ``tenant|project|metric`` → :class:`Baseline` JSON

A stored entry that does not decode (:class:`~alerter.stored.CorruptStateError`) is dropped,
counted in ``trulayer_alerter_state_dropped_total{table}`` and logged: the scope starts that
entry afresh instead of the agent crashing on every record.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from prometheus_client import Counter

from alerter.anomalies import ANOMALY_METRICS, Baseline, observe
from alerter.events import alert_event, anomaly_event
from alerter.settings import AlerterSettings
from alerter.stored import CorruptStateError, finite, mapping
from alerter.windows import BucketAgg, breaches, bucket_start, in_cooldown, metric_value, window_buckets
from trulayer_common.config import ConfigState
from trulayer_common.config.entities import MIN_COOLDOWN_MINUTES, AlertRule
from trulayer_common.logging import get_logger
from trulayer_common.topics import alerts as alert_records

log = get_logger(__name__)
STATE_DROPPED = Counter(
    "trulayer_alerter_state_dropped_total",
    "stored alerter state entries that did not decode and were dropped",
    ["table"],
)

Store = MutableMapping[str, Any]
T = TypeVar("T")
_SCORE_METRICS = ("hallucination_score", "eval_score")
_MAX_DECODED = 200_000  # decoded buckets kept (a 1 h window of one scope is 720)
_MAX_WINDOWS = 20_000  # merged window prefixes kept (one per scope × model × window length)
# Models given windows of their own per scope when the tenant's control plane reads them (the
# model name is the client's: bound the cardinality).
MAX_TRACKED_MODELS = 50


@dataclass
class Outcome:
    alerts: list[alert_records.AlertEvent] = field(default_factory=list)
    anomalies: list[alert_records.Anomaly] = field(default_factory=list)
    models: set[str] = field(default_factory=set)  # per-model windows this message moved
    watermark: float | None = None  # the scope's watermark after it (None: nothing processed)


def _meta_of(stored: Any) -> dict[str, Any]:
    """A scope's meta entry, checked field by field (``CorruptStateError`` otherwise)."""
    if not stored:
        return {}
    data = mapping(stored, "meta")
    meta: dict[str, Any] = {}
    if data.get("wm") is not None:
        meta["wm"] = finite(data["wm"], "meta watermark")
    for name in ("lo", "an"):
        if data.get(name) is not None:
            meta[name] = int(finite(data[name], f"meta {name}"))
    models = data.get("models") or []
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise CorruptStateError("meta models: not a list of names")
    meta["models"] = models
    return meta


def _rules_for(state: ConfigState, tenant_id: str, project_id: str) -> list[AlertRule]:
    return [
        r for r in state.alert_rules_of(tenant_id) if r.enabled and (r.project_id is None or r.project_id == project_id)
    ]


class Evaluator:
    def __init__(
        self,
        settings: AlerterSettings,
        config: ConfigState,
        buckets: Store,
        meta: Store,
        fired: Store,
        baselines: Store,
    ) -> None:
        self.settings = settings
        self.config = config
        self.buckets = buckets
        self.meta = meta
        self.fired = fired
        self.baselines = baselines
        # Decoding and merging stored buckets is the evaluator's main cost; both are memoised
        # on the identity of the stored values (a bucket is only ever replaced, never mutated).
        # Entries of projects gone quiet (or of partitions moved to another replica) are never
        # looked up again: past a bound both caches are simply dropped and rebuilt on demand.
        self._decoded: dict[str, tuple[Any, BucketAgg]] = {}
        self._closed: dict[tuple[str, str, int], tuple[int, list[Any], BucketAgg]] = {}

    def process(self, message: dict[str, Any]) -> Outcome:
        if len(self._decoded) > _MAX_DECODED or len(self._closed) > _MAX_WINDOWS:
            self._decoded.clear()
            self._closed.clear()
        tenant_id: str = message["tenant_id"]
        project_id: str = message["project_id"]
        scope = f"{tenant_id}|{project_id}"
        points: list[list[Any]] = message.get("points") or []
        scores: list[list[Any]] = message.get("scores") or []
        timestamps = [p[0] for p in points] + [s[0] for s in scores]
        if not timestamps:
            return Outcome()
        bucket_secs = self.settings.bucket_secs
        meta = self._decoded_or_dropped(self.meta, "meta", scope, _meta_of) or {}
        previous_wm = meta.get("wm")
        watermark = max(*timestamps, previous_wm or float("-inf"))
        horizon = watermark - self.settings.max_window_secs - self.settings.anomaly_bucket_secs
        rules = _rules_for(self.config, tenant_id, project_id)
        models = sorted({""} | {r.model for r in rules if r.model} | set(meta.get("models") or []))
        model_scoped = {r.model for r in rules if r.model}
        if self.config.control.of(tenant_id).tracks_models:
            # Policies and model routes decide on the window of the requested model.
            seen = {p[1] for p in points if p[1]} | {s[1] for s in scores if s[1]}
            room = MAX_TRACKED_MODELS - len(models)
            model_scoped |= set(models) | set(sorted(seen - set(models))[: max(room, 0)])

        touched: dict[str, BucketAgg] = {}
        touched_models: set[str] = set()
        has_scores = bool(scores)

        def agg(model: str, ts: float) -> BucketAgg:
            key = f"{scope}|{model}|{bucket_start(ts, bucket_secs)}"
            found = touched.get(key)
            if found is None:
                found = touched[key] = self._bucket(key).copy()
            return found

        for ts, model, latency, is_error, cost in points:
            if ts < horizon:
                continue  # older than any window still evaluated: too late to matter
            agg("", ts).add_point(latency, is_error, cost)
            touched_models.add("")
            if model in model_scoped:
                agg(model, ts).add_point(latency, is_error, cost)
                touched_models.add(model)
        for ts, model, metric, score in scores:
            if ts < horizon:
                continue
            agg("", ts).add_score(metric, score)
            touched_models.add("")
            if model in model_scoped:
                agg(model, ts).add_score(metric, score)
                touched_models.add(model)
        for key, value in touched.items():
            data = value.to_json()
            self.buckets[key] = data
            self._decoded[key] = (data, value)  # the table hands back this very object

        self._expire(scope, meta, models, previous_wm, horizon)
        meta["wm"] = watermark
        meta["models"] = sorted(m for m in set(models) | touched_models if m)
        outcome = Outcome(models=touched_models - {""}, watermark=watermark)
        windows: dict[tuple[str, int], BucketAgg] = {}  # rules sharing a window merge it once
        if touched_models:
            for rule in rules:
                if (rule.model or "") not in touched_models:
                    continue
                if rule.metric in _SCORE_METRICS and not has_scores:
                    continue
                alert = self._evaluate(rule, scope, project_id, watermark, windows)
                if alert is not None:
                    outcome.alerts.append(alert)
            outcome.anomalies = self._anomalies(tenant_id, project_id, scope, meta, watermark)
        self.meta[scope] = meta
        return outcome

    def _bucket(self, key: str) -> BucketAgg:
        """The stored bucket, decoded once per stored value (treat as read-only)."""
        data = self.buckets.get(key)
        cached = self._decoded.get(key)
        if cached is not None and cached[0] is data:
            return cached[1]
        if data is None:
            self._decoded.pop(key, None)
            return BucketAgg()
        decoded = self._decoded_or_dropped(self.buckets, "buckets", key, BucketAgg.from_json)
        if decoded is None:
            self._decoded.pop(key, None)
            return BucketAgg()
        self._decoded[key] = (data, decoded)
        return decoded

    @staticmethod
    def _decoded_or_dropped(store: Store, table: str, key: str, decode: Callable[[Any], T]) -> T | None:
        """``decode(store[key])``; a value that does not decode is deleted, counted, logged → None."""
        try:
            return decode(store.get(key))
        except CorruptStateError as exc:
            STATE_DROPPED.labels(table).inc()
            log.error("alerter_state_dropped", table=table, key=key, error=str(exc))
            store.pop(key, None)
            return None

    def window(self, scope: str, model: str, watermark: float, window_secs: int) -> BucketAgg:
        """The merge of the buckets covering the window. All but the newest bucket are merged
        once and reused while none of them is replaced (a late point replaces an older one)."""
        starts = window_buckets(watermark, window_secs, self.settings.bucket_secs)
        older = [self.buckets.get(f"{scope}|{model}|{start}") for start in starts[:-1]]
        memo_key = (scope, model, window_secs)
        memo = self._closed.get(memo_key)
        if memo is not None and memo[0] == starts.start and all(a is b for a, b in zip(memo[1], older, strict=True)):
            merged = memo[2].copy()
        else:
            closed = BucketAgg()
            for start, data in zip(starts[:-1], older, strict=True):
                if data:
                    closed.merge(self._bucket(f"{scope}|{model}|{start}"))
            # Holding the values themselves keeps their identities from being reused.
            self._closed[memo_key] = (starts.start, older, closed)
            merged = closed.copy()
        merged.merge(self._bucket(f"{scope}|{model}|{starts[-1]}"))
        return merged

    def _evaluate(
        self,
        rule: AlertRule,
        scope: str,
        project_id: str,
        watermark: float,
        windows: dict[tuple[str, int], BucketAgg],
    ) -> alert_records.AlertEvent | None:
        key = (rule.model or "", min(rule.window_secs, self.settings.max_window_secs))
        window = windows.get(key)
        if window is None:
            window = windows[key] = self.window(scope, key[0], watermark, key[1])
        value = metric_value(rule, window)
        if value is None or not breaches(rule.operator, value, rule.threshold):
            return None
        fired_key = f"{rule.id}|{project_id}"
        # Rules written before the minimum existed may carry less: the minimum applies to them too.
        cooldown = max(rule.cooldown_minutes, MIN_COOLDOWN_MINUTES)
        last_fired = self._decoded_or_dropped(
            self.fired, "fired", fired_key, lambda v: None if v is None else finite(v, "last firing")
        )
        if in_cooldown(last_fired, watermark, cooldown):
            return None
        self.fired[fired_key] = watermark
        return alert_event(rule, project_id, value, watermark)

    def _expire(
        self, scope: str, meta: dict[str, Any], models: list[str], previous_wm: float | None, horizon: float
    ) -> None:
        """Delete buckets older than the horizon. Stored buckets lie in ``[lo, previous_wm]``."""
        oldest = meta.get("lo")
        bucket_secs = self.settings.bucket_secs
        if oldest is None or previous_wm is None:
            meta["lo"] = bucket_start(horizon, bucket_secs)
            return
        cutoff = min(bucket_start(horizon, bucket_secs), bucket_start(previous_wm, bucket_secs) + bucket_secs)
        for start in range(int(oldest), cutoff, bucket_secs):
            for model in models:
                key = f"{scope}|{model}|{start}"
                self.buckets.pop(key, None)
                self._decoded.pop(key, None)
        meta["lo"] = max(int(oldest), bucket_start(horizon, bucket_secs))

    def _anomalies(
        self, tenant_id: str, project_id: str, scope: str, meta: dict[str, Any], watermark: float
    ) -> list[alert_records.Anomaly]:
        """Close the anomaly buckets the watermark has passed: one sample per metric each."""
        size = self.settings.anomaly_bucket_secs
        current = bucket_start(watermark, size)
        last_closed = meta.get("an")
        meta["an"] = current - size
        if last_closed is None:
            return []
        # A project silent for a while: only the most recent closed bucket is sampled; the
        # empty ones in between say nothing about latency or errors (volume sees the gap).
        start = max(int(last_closed) + size, current - size)
        if start >= current:
            return []
        window = BucketAgg()
        for sub in range(start, start + size, self.settings.bucket_secs):
            window.merge(self._bucket(f"{scope}||{sub}"))
        samples: dict[str, float] = {"volume": float(window.count)}
        if window.count >= self.settings.anomaly_min_traces:
            samples["error_rate"] = 100.0 * window.errors / window.count
            p95 = window.latency.quantile(0.95)
            if p95 is not None:
                samples["latency_p95"] = p95
        found = []
        for metric in ANOMALY_METRICS:
            if metric not in samples:
                continue
            key = f"{scope}|{metric}"
            baseline = self._decoded_or_dropped(self.baselines, "baselines", key, Baseline.from_json) or Baseline()
            verdict = observe(
                baseline,
                metric,
                samples[metric],
                alpha=self.settings.anomaly_alpha,
                warmup=self.settings.anomaly_warmup_buckets,
                z_threshold=self.settings.anomaly_z_threshold,
            )
            self.baselines[key] = baseline.to_json()
            if verdict is not None:
                found.append(anomaly_event(tenant_id, project_id, verdict, start, start + size))
        return found
