"""Producing one record from a request handler: acknowledged (acks=all) or 503."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiohttp import web
from aiokafka.errors import KafkaError

from gateway.resources import producer_key, settings_key
from trulayer_common.errors import unavailable
from trulayer_common.logging import get_logger

log = get_logger(__name__)


async def produce(request: web.Request, records: Sequence[tuple[str, bytes, bytes]]) -> None:
    """Send ``(topic, key, value)`` records and wait for every acknowledgement; 503 with
    ``Retry-After`` when the broker does not acknowledge within ``PRODUCE_TIMEOUT_SECONDS``."""
    producer = request.app[producer_key]
    timeout = request.app[settings_key].produce_timeout_seconds
    try:
        await asyncio.wait_for(
            asyncio.gather(*(producer.send_and_wait(topic, value=value, key=key) for topic, key, value in records)),
            timeout,
        )
    except (KafkaError, TimeoutError) as exc:
        log.warning("produce_failed", error=repr(exc), topics=sorted({topic for topic, _, _ in records}))
        raise unavailable("Temporarily unavailable: the broker did not acknowledge", 2) from exc
