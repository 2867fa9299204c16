"""Tenant bootstrap: a tenant, its default project and an owner API key."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from control_engine.audit import AuditLog
from control_engine.config_log import ConfigLogWriter
from trulayer_common.config import ApiKey, Plan, Project, Tenant, hash_api_key
from trulayer_common.config.entities import AlertMetric, AlertRule

KEY_PREFIX = "tl_"
# 32 bytes of randomness → 43 URL-safe characters after the prefix.
KEY_RANDOM_BYTES = 32
DISPLAY_PREFIX_CHARS = 10


def new_id() -> str:
    return str(uuid.uuid4())


def generate_api_key() -> tuple[str, str, str]:
    """(secret, sha256 hash, display prefix). The secret is shown once and never stored."""
    secret = KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)
    return secret, hash_api_key(secret), secret[:DISPLAY_PREFIX_CHARS]


@dataclass(frozen=True)
class CreatedTenant:
    tenant: Tenant
    project: Project
    api_key: ApiKey
    secret: str
    alert_rules: tuple[AlertRule, ...] = ()


async def create_tenant(
    writer: ConfigLogWriter,
    name: str,
    plan: Plan,
    actor: str = "cli",
    *,
    audit: AuditLog | None = None,
    request_id: str = "",
) -> CreatedTenant:
    """A new tenant with its ``default`` project and an owner-scoped key (secret returned once).

    A new tenant has no concurrent writer and no invariant to check yet, so this needs no
    tenant lock. With ``audit`` the three records are also written to the audit table.
    """
    now = datetime.now(UTC)
    tenant = Tenant(id=new_id(), name=name, plan=plan, created_at=now)
    project = Project(id=new_id(), tenant_id=tenant.id, name="default", created_at=now)
    secret, key_hash, prefix = generate_api_key()
    api_key = ApiKey(
        id=new_id(),
        tenant_id=tenant.id,
        project_id=project.id,
        name="owner",
        prefix=prefix,
        key_hash=key_hash,
        scopes=["ingest", "read", "owner"],
        created_at=now,
    )
    # Tenant and project first: a reader that sees the key can always resolve what it points to.
    for entity, action in ((tenant, "tenant.create"), (project, "project.create"), (api_key, "api_key.create")):
        record = await writer.append(entity, actor)
        if audit is not None:
            await audit.record(tenant.id, action, record, request_id)
    rules = tuple(default_alert_rules(tenant.id, now))
    for rule in rules:
        record = await writer.append(rule, actor)
        if audit is not None:
            await audit.record(tenant.id, "alert_rule.create", record, request_id)
    return CreatedTenant(tenant, project, api_key, secret, rules)


def default_alert_rules(tenant_id: str, now: datetime) -> list[AlertRule]:
    """The three rules every new tenant starts with (API.md): p95 latency, error rate, cost per call."""
    defaults: tuple[tuple[str, AlertMetric, float], ...] = (
        ("p95 latency above 2 s", "latency_p95", 2000.0),
        ("error rate above 5 %", "error_rate", 5.0),
        ("cost per call above 0.10", "cost_per_call", 0.10),
    )
    return [
        AlertRule(
            id=new_id(),
            tenant_id=tenant_id,
            name=name,
            metric=metric,
            operator="gt",
            threshold=threshold,
            created_at=now,
        )
        for name, metric, threshold in defaults
    ]


async def revoke_api_key(writer: ConfigLogWriter, key: ApiKey, actor: str = "cli") -> ApiKey:
    revoked = key.model_copy(update={"revoked_at": datetime.now(UTC)})
    await writer.append(revoked, actor)
    return revoked
