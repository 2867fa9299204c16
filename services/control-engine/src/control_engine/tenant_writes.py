"""The one place a tenant's configuration is changed: serialised, checked on a fresh view, audited.

Invariants that span several entities ("at least one active project", "at most 3 eval rules on
starter") are check-then-write sequences, so two concurrent writers could both pass the check.
:meth:`TenantWrites.write` makes them race-free:

1. an ``asyncio.Lock`` per tenant serialises the writers of this replica cheaply;
2. a Redis lock per tenant (``SET NX PX`` with a random token, released by a compare-and-delete
   script) serialises the replicas. It has a TTL so a crashed holder cannot block the tenant
   forever; writes are bounded by timeouts well under the TTL, and the token is re-checked
   before every append so a holder that somehow outlived its lock writes nothing;
3. after taking the lock the config log reader catches up with the log's end offsets
   (:meth:`ConfigLogReader.sync`): every change a previous holder acknowledged is in the state
   the invariants are checked against;
4. each change is appended to ``trulayer.config`` (acks=all), then to the audit table; before
   releasing, the reader catches up again, so this replica reads its own writes.

Redis unavailable → 503 (config writes fail closed; reads keep working).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from control_engine.audit import AuditLog
from control_engine.config_log import ConfigLogWriter
from trulayer_common.config import ApiKey, ConfigLogReader, ConfigRecord, ConfigState, Project, Tenant
from trulayer_common.config.control_entities import ControlEntity
from trulayer_common.config.entities import AlertRule, EvalRule, Webhook
from trulayer_common.errors import ApiError, unavailable
from trulayer_common.logging import get_logger

log = get_logger(__name__)
LOCK_LOST = Counter("trulayer_control_tenant_lock_lost_total", "writes aborted because the tenant lock expired")

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""
_RETRY_SECONDS = 0.02


def _lock_key(tenant_id: str) -> str:
    return f"tl:tenant-lock:{tenant_id}"


@dataclass
class TenantWrite:
    """A held write lock on one tenant: check invariants on ``state``, then :meth:`commit`."""

    tenant_id: str
    actor: str
    request_id: str
    state: ConfigState
    _owner: TenantWrites
    _token: str

    async def commit(
        self, entity: Tenant | Project | ApiKey | AlertRule | Webhook | EvalRule | ControlEntity, action: str
    ) -> ConfigRecord:
        """Append the entity's new state to the config log, then to the audit table."""
        await self._owner._ensure_held(self.tenant_id, self._token)
        record = await self._owner.writer.append(entity, self.actor)
        await self._owner.audit.record(self.tenant_id, action, record, self.request_id)
        return record


class TenantWrites:
    def __init__(
        self,
        redis: Redis,
        reader: ConfigLogReader,
        writer: ConfigLogWriter,
        audit: AuditLog,
        *,
        lock_ttl_seconds: float,
        lock_wait_seconds: float,
        sync_timeout_seconds: float,
    ) -> None:
        self.redis = redis
        self.reader = reader
        self.writer = writer
        self.audit = audit
        self._ttl_ms = int(lock_ttl_seconds * 1000)
        self._wait = lock_wait_seconds
        self._sync_timeout = sync_timeout_seconds
        self._local: dict[str, asyncio.Lock] = {}
        self._release_script = redis.register_script(_RELEASE)

    @asynccontextmanager
    async def write(self, tenant_id: str, actor: str, request_id: str) -> AsyncIterator[TenantWrite]:
        """Hold the tenant's write lock (this replica and all others) on a caught-up state."""
        # One lock object per tenant that ever wrote on this replica: a few hundred bytes each.
        local = self._local.setdefault(tenant_id, asyncio.Lock())
        async with local:
            token = await self._acquire(tenant_id)
            try:
                await self._sync()
                yield TenantWrite(tenant_id, actor, request_id, self.reader.state, self, token)
                await self._sync()
            finally:
                try:
                    await self._release_script(keys=[_lock_key(tenant_id)], args=[token])
                except RedisError as exc:  # the TTL frees it
                    log.warning("tenant_lock_release_failed", tenant_id=tenant_id, error=repr(exc))

    async def _acquire(self, tenant_id: str) -> str:
        token = secrets.token_hex(16)
        deadline = time.monotonic() + self._wait
        try:
            while not await self.redis.set(_lock_key(tenant_id), token, nx=True, px=self._ttl_ms):
                if time.monotonic() >= deadline:
                    raise unavailable("Another change to this tenant is in progress; retry", 1, code="tenant_busy")
                await asyncio.sleep(_RETRY_SECONDS)
        except RedisError as exc:
            log.error("tenant_lock_unavailable", tenant_id=tenant_id, error=repr(exc))
            raise unavailable("Configuration changes are temporarily unavailable", 2) from exc
        return token

    async def _ensure_held(self, tenant_id: str, token: str) -> None:
        try:
            held = await self.redis.get(_lock_key(tenant_id))
        except RedisError as exc:
            raise unavailable("Configuration changes are temporarily unavailable", 2) from exc
        if held is None or (held.decode() if isinstance(held, bytes) else held) != token:
            LOCK_LOST.inc()
            log.error("tenant_lock_lost", tenant_id=tenant_id)
            raise ApiError(503, "The change took too long and was not applied; retry", "tenant_busy")

    async def _sync(self) -> None:
        try:
            await self.reader.sync(self._sync_timeout)
        except TimeoutError as exc:
            raise unavailable("Configuration log is not reachable; retry", 2) from exc
