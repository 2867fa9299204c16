"""The gateway's decisions on their way to ``trulayer.control.decisions`` (then stored for
``dataSource: configMetrics``).

:func:`decision_record` turns one decision into its record (pure). :class:`DecisionLog` takes
the server's own decisions (``/decide``, ``/execute``) off the request path: ``add`` only
appends to a bounded buffer; a background task sends each tenant's pending decisions as
records of ≤100 every ``flush_interval`` (or sooner once 100 are waiting), so a decision costs
the caller no broker round trip. This is at-most-once by design: decisions still buffered
when the process dies, or refused by a broker down for longer than the send timeout, are lost
and counted (``trulayer_gateway_decisions_dropped_total``); past ``max_pending`` the oldest are
dropped. Decisions SDKs report (``POST /v1/control/decisions``) are data and are produced on
the request path, acknowledged before the 202 (:mod:`gateway.control_sdk`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from prometheus_client import Counter

from trulayer_common.logging import get_logger
from trulayer_common.topics import control_decisions
from trulayer_common.topics.control_decisions import ControlDecision
from trulayer_sdk.policy import Decision

log = get_logger(__name__)
LOGGED = Counter("trulayer_gateway_decisions_logged_total", "decisions sent to the decision log", ["source"])
DROPPED = Counter("trulayer_gateway_decisions_dropped_total", "server decisions not logged", ["why"])
SEND_TIMEOUT_SECONDS = 10.0


def decision_record(
    decision: Decision,
    *,
    decision_id: str,
    decided_at: datetime,
    source: str,
    project_id: str,
    requested_model: str,
    retry_depth: int = 0,
    cascade_depth: int = 0,
    metadata: dict[str, Any] | None = None,
    request_id: str | None = None,
    status: str | None = None,
) -> ControlDecision:
    """The record of one decision; model routes fill ``loadbalance_rule_id`` (configMetrics)."""
    return ControlDecision(
        id=decision_id,
        decided_at=decided_at,
        source=source,  # type: ignore[typeddict-item]
        project_id=project_id,
        requested_model=requested_model,
        target_model=decision.target_model,
        decision=decision.decision,
        rule_id=decision.rule_id,
        reason=decision.reason,
        dry_run=decision.dry_run,
        action=decision.action,
        config_type=decision.config_type or "",
        status=status or ("blocked" if decision.blocked else "success"),
        loadbalance_rule_id=decision.rule_id if decision.config_type == "model_route" else None,
        ratelimit_rule_id=None,
        budget_rule_id=None,
        loadbalance_target_attempt_count=cascade_depth + 1,
        retry_depth=retry_depth,
        cascade_depth=cascade_depth,
        would_decision=decision.would_decision,
        would_target_model=decision.would_target_model,
        metadata=metadata or {},
        request_id=request_id,
    )


class DecisionLog:
    def __init__(self, producer: AIOKafkaProducer, *, flush_interval: float = 0.1, max_pending: int = 50_000) -> None:
        self._producer = producer
        self._interval = flush_interval
        self._pending: deque[tuple[str, ControlDecision]] = deque()
        self._max = max_pending
        self._due = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()

    def add(self, tenant_id: str, decision: ControlDecision) -> None:
        if len(self._pending) >= self._max:
            self._pending.popleft()
            DROPPED.labels("buffer_full").inc()
        self._pending.append((tenant_id, decision))
        if len(self._pending) >= control_decisions.MAX_DECISIONS:
            self._due.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="decision-log")

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._due.wait(), self._interval)
            self._due.clear()
            self.flush()

    def flush(self) -> None:
        """Send everything pending, one record per tenant per ≤100 decisions (not awaited)."""
        by_tenant: dict[str, list[ControlDecision]] = {}
        while self._pending:
            tenant_id, decision = self._pending.popleft()
            by_tenant.setdefault(tenant_id, []).append(decision)
        for tenant_id, decisions in by_tenant.items():
            for start in range(0, len(decisions), control_decisions.MAX_DECISIONS):
                chunk = decisions[start : start + control_decisions.MAX_DECISIONS]
                task = asyncio.create_task(self._send(tenant_id, chunk))
                self._sends.add(task)
                task.add_done_callback(self._sends.discard)

    async def _send(self, tenant_id: str, decisions: list[ControlDecision]) -> None:
        projects = {d["project_id"] for d in decisions}
        value = control_decisions.encode(
            decisions, tenant_id=tenant_id, project_id=projects.pop() if len(projects) == 1 else "", request_id=""
        )
        try:
            await asyncio.wait_for(
                self._producer.send_and_wait(
                    control_decisions.TOPIC,
                    value=value,
                    key=control_decisions.key(decisions),
                    headers=control_decisions.headers(decisions),
                ),
                SEND_TIMEOUT_SECONDS,
            )
            LOGGED.labels("server").inc(len(decisions))
        except Exception as exc:  # the broker is away: at-most-once, counted
            DROPPED.labels("send_failed").inc(len(decisions))
            log.warning("decisions_not_logged", tenant_id=tenant_id, decisions=len(decisions), error=repr(exc))

    async def stop(self) -> None:
        """Send what is pending and wait (bounded) for the sends in flight."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.flush()
        if self._sends:
            await asyncio.wait(set(self._sends), timeout=SEND_TIMEOUT_SECONDS)
