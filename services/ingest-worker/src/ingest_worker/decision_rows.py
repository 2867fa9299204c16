"""The decision log's transform: one ``trulayer.control.decisions`` record → rows of
``control_decisions`` (migration 0006). No I/O.

Every decision of the record becomes one row; optional fields absent from a record (or from
an older one) become empty strings and zeros, never NULL, so ``configMetrics`` group-bys see
one value for "none". ``metadata`` is stored as JSON text (``metadata.<key>`` reads it with
``JSONExtractString``), like the traces' metadata.
"""

from __future__ import annotations

from typing import Any

from trulayer_common.clickhouse.table_sink import TableRows
from trulayer_common.topics.control_decisions import DecisionEnvelope
from trulayer_common.topics.envelope import json_text

TABLE = "control_decisions"


def _iso(value: Any) -> str:
    return str(value.isoformat())


def decision_rows(envelope: DecisionEnvelope) -> TableRows:
    received_at = _iso(envelope.received_at)
    rows = []
    for d in envelope.payload["decisions"]:
        rows.append(
            {
                "tenant_id": envelope.tenant_id,
                "project_id": d["project_id"],
                "id": d["id"],
                "decided_at": _iso(d["decided_at"]),
                "received_at": received_at,
                "source": d["source"],
                "decision": d["decision"],
                "requested_model": d["requested_model"],
                "target_model": d.get("target_model") or "",
                "rule_id": d.get("rule_id") or "",
                "reason": d.get("reason") or "",
                "action": d.get("action") or "",
                "dry_run": bool(d.get("dry_run", False)),
                "config_type": d.get("config_type") or "",
                "status": d.get("status") or "",
                "loadbalance_rule_id": d.get("loadbalance_rule_id") or "",
                "ratelimit_rule_id": d.get("ratelimit_rule_id") or "",
                "budget_rule_id": d.get("budget_rule_id") or "",
                "loadbalance_target_attempt_count": d.get("loadbalance_target_attempt_count") or 0,
                "retry_depth": d.get("retry_depth") or 0,
                "cascade_depth": d.get("cascade_depth") or 0,
                "would_decision": d.get("would_decision") or "",
                "would_target_model": d.get("would_target_model") or "",
                "request_id": d.get("request_id") or "",
                "metadata": json_text(d.get("metadata") or {}, "metadata"),
            }
        )
    return {TABLE: rows}
