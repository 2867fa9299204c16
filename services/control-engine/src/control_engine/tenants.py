"""Tenant bootstrap: a tenant, its default project and an owner API key."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from control_engine.config_log import ConfigLogWriter
from trulayer_common.config import ApiKey, Plan, Project, Tenant, hash_api_key

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


async def create_tenant(writer: ConfigLogWriter, name: str, plan: Plan, actor: str = "cli") -> CreatedTenant:
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
    await writer.append(tenant, actor)
    await writer.append(project, actor)
    await writer.append(api_key, actor)
    return CreatedTenant(tenant, project, api_key, secret)


async def revoke_api_key(writer: ConfigLogWriter, key: ApiKey, actor: str = "cli") -> ApiKey:
    revoked = key.model_copy(update={"revoked_at": datetime.now(UTC)})
    await writer.append(revoked, actor)
    return revoked
