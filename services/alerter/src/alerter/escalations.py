"""``policy.escalated``: the webhook event of decisions whose policy action is ``escalate``.

Every decision, the gateway's and the ones SDKs report, goes to ``trulayer.control.decisions``;
records holding an escalation carry a header (``control_decisions.ESCALATE_HEADER``), so the
alerter decodes only those. Each escalation is delivered through the alerter's one delivery
path (:class:`~alerter.webhooks.WebhookDispatcher`: signed, retried, every attempt recorded) to
the tenant's webhooks subscribed to ``policy.escalated``, at most once per policy × project per
``ESCALATION_COOLDOWN_SECONDS`` (an escalating policy decides on every call; people want one
page). Escalations decided more than ``ESCALATION_MAX_AGE_SECONDS`` ago (a replay after a long
outage) are not delivered. The cooldown lives in memory: after a restart a policy may escalate
once more.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter

from alerter.events import iso
from trulayer_common.config import ConfigState
from trulayer_common.topics import control_decisions

ESCALATED_EVENT = "policy.escalated"
FIRED = Counter("trulayer_alerter_escalations_total", "policy.escalated events", ["outcome"])
_NAMESPACE = uuid.UUID("2b0e7c4e-1f9a-4c55-8d1e-7a0f0e6b9c21")
_MAX_COOLDOWNS = 100_000

Submit = Callable[[str, str, dict[str, Any], list[Any]], None]


class Escalations:
    def __init__(self, config: ConfigState, submit: Submit, cooldown_seconds: float, max_age_seconds: float) -> None:
        self._config = config
        self._submit = submit
        self._cooldown = cooldown_seconds
        self._max_age = max_age_seconds
        self._last: dict[tuple[str, str, str], float] = {}

    def handle(self, value: bytes | None, now: float | None = None) -> list[dict[str, Any]]:
        """Deliver the escalations of one decisions record; returns the webhook bodies sent.
        Raises :class:`~trulayer_common.topics.InvalidRecordError` for a record it cannot read."""
        now = time.time() if now is None else now
        envelope = control_decisions.decode(value)
        tenant_id = envelope.tenant_id
        sent = []
        for decision in envelope.payload["decisions"]:
            if not control_decisions.is_escalation(decision):
                continue
            decided = decision["decided_at"].timestamp()
            if now - decided > self._max_age:
                FIRED.labels("too_old").inc()
                continue
            key = (tenant_id, decision.get("rule_id") or "", decision["project_id"])
            last = self._last.get(key)
            if last is not None and now - last < self._cooldown:
                FIRED.labels("cooldown").inc()
                continue
            if len(self._last) >= _MAX_COOLDOWNS:
                self._last.clear()
            self._last[key] = now
            body = self.body(tenant_id, decision, now)
            self._submit(tenant_id, ESCALATED_EVENT, body, self._config.webhooks_of(tenant_id))
            FIRED.labels("delivered").inc()
            sent.append(body)
        return sent

    def body(self, tenant_id: str, decision: control_decisions.ControlDecision, now: float) -> dict[str, Any]:
        policy_id = decision.get("rule_id") or ""
        policy = self._config.control.of(tenant_id).policies.get(policy_id)
        event_id = str(uuid.uuid5(_NAMESPACE, f"{tenant_id}|{policy_id}|{decision['project_id']}|{decision['id']}"))
        return {
            "event": ESCALATED_EVENT,
            "id": event_id,
            "created_at": iso(now),
            "data": {
                "tenant_id": tenant_id,
                "project_id": decision["project_id"],
                "policy_id": policy_id,
                "policy_name": policy.name if policy is not None else "",
                "trigger_type": policy.trigger_type if policy is not None else "",
                "decision_id": decision["id"],
                "requested_model": decision["requested_model"],
                "reason": decision.get("reason", ""),
                "source": decision["source"],
                "decided_at": iso(decision["decided_at"].timestamp()),
            },
        }
