"""Typed application keys of the control-engine's resources (created in ``cleanup_ctx``)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from aiohttp import web
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from control_engine.audit import AuditLog
from control_engine.config_log import ConfigLogWriter
from control_engine.requests import ControlPrincipal
from control_engine.settings import ControlEngineSettings
from control_engine.tenant_writes import TenantWrite, TenantWrites
from trulayer_common.clickhouse import ClickHouse
from trulayer_common.config import ConfigLogReader, ConfigState
from trulayer_common.errors import unavailable
from trulayer_common.http import get_request_id
from trulayer_common.outbound import OutboundClient
from trulayer_common.secret_box import SecretBox

settings_key = web.AppKey("settings", ControlEngineSettings)
producer_key = web.AppKey("producer", AIOKafkaProducer)
writer_key = web.AppKey("config_writer", ConfigLogWriter)
reader_key = web.AppKey("config_reader", ConfigLogReader)
redis_key = web.AppKey("redis", Redis)
clickhouse_key = web.AppKey("clickhouse", ClickHouse)
audit_key = web.AppKey("audit", AuditLog)
tenant_writes_key = web.AppKey("tenant_writes", TenantWrites)
outbound_key = web.AppKey("outbound", OutboundClient)
secret_box_key = web.AppKey("secret_box", SecretBox)


async def synced_state(request: web.Request) -> ConfigState:
    """The config state after catching up with the log (a caller reads its own writes); a log
    that cannot be caught up in time is a 503, never a 500."""
    reader = request.app[reader_key]
    try:
        await reader.sync(request.app[settings_key].config_sync_timeout_seconds)
    except TimeoutError as exc:
        raise unavailable("Configuration log is not reachable; retry", 2, code="config_unavailable") from exc
    return reader.state


def tenant_write(request: web.Request, principal: ControlPrincipal) -> AbstractAsyncContextManager[TenantWrite]:
    """The principal's tenant write for this request: its lock held, on a caught-up state, audited
    under the principal and the request id."""
    return request.app[tenant_writes_key].write(principal.tenant_id, principal.actor, get_request_id(request))
