"""The audit trail of configuration changes (ClickHouse ``config_audit``): who, what, when.

The state written is the entity *without secrets*: no key hash, no webhook secret (sealed or
not), and webhook URLs masked to scheme and host (for Slack-style hooks the URL is the secret).

Written after the change is on the config log: the log is the source of truth, so a change is
never refused because the audit store is slow or down. A failed audit insert is logged with
the full record and counted (``trulayer_control_audit_failed_total``) so it can be alerted on.
"""

from __future__ import annotations

from prometheus_client import Counter

from trulayer_common.clickhouse import ClickHouse
from trulayer_common.config import ConfigRecord
from trulayer_common.config.entities import Webhook
from trulayer_common.logging import get_logger
from trulayer_common.outbound import masked_url

log = get_logger(__name__)
AUDIT_FAILED = Counter("trulayer_control_audit_failed_total", "config changes whose audit row could not be written")


_SECRET_FIELDS = {"key_hash", "secret"}


def audit_state(record: ConfigRecord) -> str:
    """The entity's state as audited: secrets left out, webhook URLs masked."""
    entity = record.entity
    if isinstance(entity, Webhook):
        entity = entity.model_copy(update={"url": masked_url(entity.url)})
    return entity.model_dump_json(exclude=_SECRET_FIELDS)


class AuditLog:
    def __init__(self, clickhouse: ClickHouse) -> None:
        self._ch = clickhouse

    async def record(self, tenant_id: str, action: str, record: ConfigRecord, request_id: str) -> None:
        row = {
            "tenant_id": tenant_id,
            "at": record.at.isoformat(),
            "entity_kind": record.entity.kind,
            "entity_id": record.entity.id,
            "action": action,
            "actor": record.actor,
            "request_id": request_id,
            "state": audit_state(record),
        }
        try:
            await self._ch.insert_json_rows("config_audit", [row])
        except Exception as exc:
            AUDIT_FAILED.inc()
            log.error("config_audit_failed", error=repr(exc), **{k: v for k, v in row.items() if k != "state"})

    async def entries(self, tenant_id: str, limit: int = 100) -> list[dict[str, object]]:
        """The tenant's latest changes, newest first."""
        return await self._ch.query(
            f"SELECT at, entity_kind, entity_id, action, actor, request_id FROM {self._ch.database}.config_audit "
            "WHERE tenant_id = {t:String} ORDER BY at DESC LIMIT {n:UInt32}",
            {"t": tenant_id, "n": limit},
        )
