"""Typed application keys of the gateway's resources (created in ``cleanup_ctx``)."""

from __future__ import annotations

from aiohttp import web
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from gateway.auth import Principal
from gateway.dedup import TraceDeduplicator
from gateway.settings import GatewaySettings
from trulayer_common.clickhouse import ClickHouse
from trulayer_common.config import ConfigLogReader, ConfigState
from trulayer_common.evals.quota import EvalQuota

settings_key = web.AppKey("settings", GatewaySettings)
producer_key = web.AppKey("producer", AIOKafkaProducer)
redis_key = web.AppKey("redis", Redis)
clickhouse_key = web.AppKey("clickhouse", ClickHouse)
config_reader_key = web.AppKey("config_reader", ConfigLogReader)
config_state = web.AppKey("config_state", ConfigState)
dedup_key = web.AppKey("dedup", TraceDeduplicator)
eval_quota_key = web.AppKey("eval_quota", EvalQuota)
principal_key = web.RequestKey("principal", Principal)
