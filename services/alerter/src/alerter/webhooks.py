"""Signed webhook delivery: retries with backoff and jitter, every attempt recorded, isolated.

* Each (event, webhook) delivery is its own task; the loop that evaluates rules only submits.
* Concurrency is bounded twice: globally, and per tenant, so one tenant's slow or dead
  receivers can hold at most ``webhook_tenant_concurrency`` slots and never stall the others.
  Past ``webhook_max_pending`` queued deliveries new ones are dropped and recorded as failed.
* An attempt has a total timeout. 2xx → delivered. 5xx, timeouts and connection errors are
  retried up to ``webhook_max_attempts`` with full-jitter exponential backoff. Any other status
  (4xx, 3xx: redirects are not followed) fails at once, without retry.
* Every attempt is reported to ``on_attempt``; ``on_delivered(body)`` is called once per
  event, on its first 2xx (that is when ``notification_sent`` becomes true).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import orjson
from prometheus_client import Counter

from alerter.events import iso
from alerter.settings import AlerterSettings
from trulayer_common.config.entities import Webhook
from trulayer_common.logging import get_logger
from trulayer_common.topics import alerts
from trulayer_common.webhook_signature import DELIVERY_HEADER, EVENT_HEADER, signed_headers

log = get_logger(__name__)
ATTEMPTS = Counter("trulayer_alerter_webhook_attempts_total", "webhook delivery attempts", ["outcome"])

Outcome = Literal["delivered", "retrying", "failed"]


@dataclass(frozen=True)
class Attempt:
    tenant_id: str
    webhook_id: str
    event_id: str
    delivery_id: str
    url: str
    attempt: int
    status_code: int
    outcome: Outcome
    error: str
    duration_ms: float
    attempted_at: float

    def record(self) -> alerts.WebhookDelivery:
        return alerts.WebhookDelivery(
            kind="webhook_delivery",
            tenant_id=self.tenant_id,
            webhook_id=self.webhook_id,
            alert_event_id=self.event_id,
            id=self.delivery_id,
            url=self.url,
            attempt=self.attempt,
            status_code=self.status_code,
            outcome=self.outcome,
            error=self.error,
            duration_ms=round(self.duration_ms, 3),
            attempted_at=iso(self.attempted_at),
        )


AttemptCallback = Callable[[Attempt], Awaitable[None]]
DeliveredCallback = Callable[[dict[str, Any]], Awaitable[None]]


def is_retryable(status: int) -> bool:
    return status >= 500


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Full jitter: uniform in ``[0, min(cap, base * 2^(attempt-1))]``."""
    ceiling = min(cap, base * (2 ** (attempt - 1)))
    return (rng or random).uniform(0, ceiling)


class WebhookDispatcher:
    def __init__(
        self,
        settings: AlerterSettings,
        on_attempt: AttemptCallback,
        on_delivered: DeliveredCallback,
    ) -> None:
        self._settings = settings
        self._on_attempt = on_attempt
        self._on_delivered = on_delivered
        self._global = asyncio.Semaphore(settings.webhook_concurrency)
        self._tenants: dict[str, asyncio.Semaphore] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._settings.webhook_timeout_seconds),
            headers={"User-Agent": "trulayer-alerter/1", "Content-Type": "application/json"},
        )

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def submit(self, tenant_id: str, event_name: str, body: dict[str, Any], hooks: list[Webhook]) -> None:
        """Queue one delivery of ``body`` (which has an ``id``) per subscribed, enabled webhook; returns at once."""
        event_id = str(body["id"])
        payload = orjson.dumps(body)
        notified: list[bool] = [False]  # shared by this event's deliveries: report the first 2xx once
        for hook in hooks:
            if not hook.enabled or event_name not in hook.events:
                continue
            if len(self._tasks) >= self._settings.webhook_max_pending:
                log.error("webhook_queue_full", tenant_id=tenant_id, webhook_id=hook.id)
                task = asyncio.create_task(self._record_dropped(tenant_id, hook, event_id))
            else:
                task = asyncio.create_task(self._deliver(tenant_id, hook, event_name, body, payload, notified))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _record_dropped(self, tenant_id: str, hook: Webhook, event_id: str) -> None:
        now = time.time()
        await self._report(
            Attempt(tenant_id, hook.id, event_id, uuid.uuid4().hex, hook.url, 0, 0, "failed", "queue full", 0.0, now)
        )

    async def _deliver(
        self,
        tenant_id: str,
        hook: Webhook,
        event_name: str,
        body: dict[str, Any],
        payload: bytes,
        notified: list[bool],
    ) -> None:
        event_id = str(body["id"])
        settings = self._settings
        tenant_slots = self._tenants.setdefault(tenant_id, asyncio.Semaphore(settings.webhook_tenant_concurrency))
        delivery_id = uuid.uuid4().hex
        for attempt in range(1, settings.webhook_max_attempts + 1):
            async with tenant_slots, self._global:
                status, error, started, elapsed = await self._post(hook, event_name, delivery_id, payload)
            if 200 <= status < 300:
                outcome: Outcome = "delivered"
            elif (status == 0 or is_retryable(status)) and attempt < settings.webhook_max_attempts:
                outcome = "retrying"
            else:
                outcome = "failed"
            ATTEMPTS.labels(outcome).inc()
            await self._report(
                Attempt(
                    tenant_id,
                    hook.id,
                    event_id,
                    delivery_id,
                    hook.url,
                    attempt,
                    status,
                    outcome,
                    error,
                    elapsed,
                    started,
                )
            )
            if outcome == "delivered":
                if not notified[0]:
                    notified[0] = True
                    await self._on_delivered(body)
                return
            if outcome == "failed":
                log.warning("webhook_failed", webhook_id=hook.id, status=status, error=error, attempts=attempt)
                return
            await asyncio.sleep(
                backoff_delay(attempt, settings.webhook_backoff_base_seconds, settings.webhook_backoff_max_seconds)
            )

    async def _post(
        self, hook: Webhook, event_name: str, delivery_id: str, payload: bytes
    ) -> tuple[int, str, float, float]:
        """(status or 0 when no answer, error text, wall start, elapsed ms) of one attempt."""
        assert self._session is not None
        headers = signed_headers(hook.secret, payload)
        headers[EVENT_HEADER] = event_name
        headers[DELIVERY_HEADER] = delivery_id
        started = time.time()
        clock = time.perf_counter()
        try:
            async with self._session.post(hook.url, data=payload, headers=headers, allow_redirects=False) as resp:
                await resp.read()
                error = "" if 200 <= resp.status < 300 else f"HTTP {resp.status}"
                return resp.status, error, started, (time.perf_counter() - clock) * 1000
        except TimeoutError:
            return 0, "timeout", started, (time.perf_counter() - clock) * 1000
        except aiohttp.ClientError as exc:
            return 0, f"{type(exc).__name__}: {exc}"[:500], started, (time.perf_counter() - clock) * 1000

    async def _report(self, attempt: Attempt) -> None:
        try:
            await self._on_attempt(attempt)
        except Exception as exc:  # recording must never break delivery
            log.error("webhook_attempt_not_recorded", error=repr(exc), webhook_id=attempt.webhook_id)

    async def stop(self, grace_seconds: float = 2.0) -> None:
        """Give in-flight deliveries a moment, then cancel the rest (they are not persisted)."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace_seconds)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._session is not None:
            await self._session.close()
            self._session = None
