"""Live window summaries for the control plane, published on ``trulayer.signals``.

Only tenants whose active policies or enabled routes read live windows
(``TenantControl.tracks_models``) are published, and only they get per-model windows: other
tenants cost nothing more than before. After each observation of such a tenant,
:meth:`SignalPublisher.observe` (called by the agent, in its stream context: faust tables may
only be touched there) takes the merged windows of the pairs (project-wide ``""`` and each
model) the observation moved, for every window length the tenant's rules read plus the default
300 s, and keeps the latest per pair. Every ``ALERTER_SIGNALS_INTERVAL_SECONDS`` a background
task summarises each kept pair once (:func:`summary`) and sends one record per pair: the rate
is bounded by the interval whatever the trace rate, and a burst's final state is always sent.
Anomalies detected in a project ride along in its records (``anomalies``: type → window end)
for ``max_window_secs``. Publishing is best effort: a failed send is logged and the next
change sends the state again.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from prometheus_client import Counter

from alerter.evaluator import Evaluator, Outcome
from alerter.settings import AlerterSettings
from alerter.windows import BucketAgg
from trulayer_common.config import ConfigState
from trulayer_common.logging import get_logger
from trulayer_common.topics import alerts as alert_records
from trulayer_common.topics import signals

log = get_logger(__name__)
PUBLISHED = Counter("trulayer_alerter_signals_published_total", "window summaries sent to the signals topic")
FAILED = Counter("trulayer_alerter_signals_failed_total", "window summaries that could not be sent")
DEFAULT_WINDOW_SECS = 300
Pair = tuple[str, str, str]  # tenant, project, model


def summary(window: BucketAgg, window_secs: int) -> signals.WindowSummary:
    """The statistics of one merged window (error rate as a share 0..1)."""
    count = window.count
    scores = {metric: total / n for metric, (total, n) in window.scores.items() if n}
    return signals.WindowSummary(
        window_secs=window_secs,
        count=count,
        error_rate=window.errors / count if count else None,
        latency_p50=window.latency.quantile(0.5) if count else None,
        latency_p95=window.latency.quantile(0.95) if count else None,
        latency_p99=window.latency.quantile(0.99) if count else None,
        cost_per_call=window.cost / count if count else None,
        total_cost=window.cost if count else None,
        eval_scores=scores,
    )


class SignalPublisher:
    def __init__(
        self, settings: AlerterSettings, config: ConfigState, evaluator: Evaluator, producer: AIOKafkaProducer
    ) -> None:
        self._settings = settings
        self._config = config
        self._evaluator = evaluator
        self._producer = producer
        self._pending: dict[Pair, tuple[float, dict[int, BucketAgg]]] = {}  # pair → (watermark, windows)
        self._anomalies: dict[tuple[str, str], dict[str, float]] = {}
        self._task: asyncio.Task[None] | None = None

    def observe(self, tenant_id: str, project_id: str, outcome: Outcome) -> None:
        """Keep the windows an observation moved (in the agent's stream context)."""
        self.note_anomalies(outcome.anomalies)
        if outcome.watermark is None or not self._config.control.of(tenant_id).tracks_models:
            return
        scope = f"{tenant_id}|{project_id}"
        windows = self.windows_of(tenant_id)
        for model in outcome.models | {""}:
            merged = {secs: self._evaluator.window(scope, model, outcome.watermark, secs) for secs in windows}
            self._pending[(tenant_id, project_id, model)] = (outcome.watermark, merged)

    def note_anomalies(self, found: list[alert_records.Anomaly]) -> None:
        for anomaly in found:
            ended = datetime.fromisoformat(anomaly["window_end"].replace("Z", "+00:00")).timestamp()
            self._anomalies.setdefault((anomaly["tenant_id"], anomaly["project_id"]), {})[anomaly["type"]] = ended

    def windows_of(self, tenant_id: str) -> list[int]:
        wanted = {DEFAULT_WINDOW_SECS} | set(self._config.control.of(tenant_id).window_seconds)
        return sorted(w for w in wanted if w <= self._settings.max_window_secs)

    def record(self, pair: Pair, watermark: float, windows: dict[int, BucketAgg]) -> signals.WindowSignal:
        tenant_id, project_id, model = pair
        summaries = [summary(window, secs) for secs, window in sorted(windows.items())]
        primary = next(s for s in summaries if s.window_secs == DEFAULT_WINDOW_SECS)
        horizon = watermark - self._settings.max_window_secs
        found = self._anomalies.get((tenant_id, project_id), {})
        fields: dict[str, Any] = primary.model_dump()
        return signals.WindowSignal(
            tenant_id=tenant_id,
            project_id=project_id,
            model=model,
            as_of=datetime.fromtimestamp(watermark, UTC),
            windows=summaries,
            anomalies={k: datetime.fromtimestamp(v, UTC) for k, v in found.items() if v >= horizon},
            **fields,
        )

    async def publish(self) -> int:
        """Send a summary of every pair observed since the last call; returns how many were sent."""
        pending, self._pending = self._pending, {}
        sends = []
        for pair, (watermark, windows) in pending.items():
            record = self.record(pair, watermark, windows)
            sends.append(self._producer.send(signals.TOPIC, value=signals.encode(record), key=signals.key(record)))
        queued = await asyncio.gather(*sends, return_exceptions=True)
        failed = [q for q in queued if isinstance(q, BaseException)]
        acked = await asyncio.gather(*(q for q in queued if not isinstance(q, BaseException)), return_exceptions=True)
        failed += [a for a in acked if isinstance(a, BaseException)]
        if failed:
            FAILED.inc(len(failed))
            log.warning("signals_not_published", failed=len(failed), error=repr(failed[0]))
        sent = len(pending) - len(failed)
        PUBLISHED.inc(sent)
        return sent

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._settings.alerter_signals_interval_seconds)
            try:
                await self.publish()
            except Exception:  # never stop publishing for one bad round
                log.exception("signals_publish_failed")

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="signals-publisher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
