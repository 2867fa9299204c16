"""Signed webhook delivery: fair per tenant, guarded against SSRF, retried with backoff, recorded.

* The loop that evaluates rules only :meth:`WebhookDispatcher.submit`\\ s; deliveries wait in a
  :class:`~alerter.delivery_queue.FairQueue` (one bounded queue per tenant, served round-robin
  by ``webhook_concurrency`` workers, at most ``webhook_tenant_concurrency`` in flight per
  tenant). A tenant past ``webhook_tenant_max_pending`` waiting deliveries (or everyone past
  ``webhook_max_pending``) has its new ones dropped and recorded as failed ``queue_full``: one
  tenant's storm never delays another tenant's alert by more than a turn.
* Every request goes through :class:`~trulayer_common.outbound.OutboundClient`: public
  destinations (or the operator's ``EGRESS_ALLOWLIST``) only, checked at connect time; no
  redirects; at most a few KiB of a reply read; a total timeout per attempt.
* 2xx → delivered. Timeouts, connection failures and 5xx are retried up to
  ``webhook_max_attempts`` with full-jitter exponential backoff (the retry waits outside the
  queue, then queues again). Refused destinations, invalid URLs and any other status (4xx,
  3xx) fail at once.
* Every attempt is reported to ``on_attempt`` with its category (never the receiver's text,
  and the URL masked); ``on_delivered(body)`` is called once per event, on its first 2xx.
* The signing secret is sealed on the config log; it is opened here, per attempt, in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from aiohttp.abc import AbstractResolver
from prometheus_client import Counter, Gauge

from alerter.delivery_queue import FairQueue
from alerter.events import iso
from alerter.settings import AlerterSettings
from trulayer_common.config.entities import Webhook
from trulayer_common.logging import get_logger
from trulayer_common.outbound import OutboundClient, OutboundResult, masked_url
from trulayer_common.secret_box import SecretBox, SecretUnavailableError, webhook_secret_context
from trulayer_common.topics import alerts
from trulayer_common.webhook_signature import DELIVERY_HEADER, EVENT_HEADER, signed_headers

log = get_logger(__name__)
ATTEMPTS = Counter("trulayer_alerter_webhook_attempts_total", "webhook delivery attempts", ["outcome"])
DROPPED = Counter("trulayer_alerter_webhook_dropped_total", "deliveries dropped: the tenant's queue was full")
WAITING = Gauge("trulayer_alerter_webhook_waiting", "deliveries waiting for a worker, all tenants")

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


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Full jitter: uniform in ``[0, min(cap, base * 2^(attempt-1))]``."""
    ceiling = min(cap, base * (2 ** (attempt - 1)))
    return (rng or random).uniform(0, ceiling)


@dataclass
class _Delivery:
    """One event to one webhook, across its attempts."""

    tenant_id: str
    hook: Webhook
    event_name: str
    body: dict[str, Any]
    payload: bytes
    notified: list[bool]  # shared by the event's deliveries: report the first 2xx once
    delivery_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    attempt: int = 1

    @property
    def event_id(self) -> str:
        return str(self.body["id"])


class WebhookDispatcher:
    def __init__(
        self,
        settings: AlerterSettings,
        on_attempt: AttemptCallback,
        on_delivered: DeliveredCallback,
        secrets: SecretBox,
        *,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self._settings = settings
        self._on_attempt = on_attempt
        self._on_delivered = on_delivered
        self._secrets = secrets
        self._queue: FairQueue[_Delivery] = FairQueue(
            per_tenant=settings.webhook_tenant_max_pending,
            total=settings.webhook_max_pending,
            tenant_slots=settings.webhook_tenant_concurrency,
        )
        self._client = OutboundClient(
            settings.outbound_policy(),
            timeout_seconds=settings.webhook_timeout_seconds,
            max_reply_bytes=settings.webhook_max_reply_bytes,
            user_agent="trulayer-alerter/1",
            resolver=resolver,
        )
        self._wakeup = asyncio.Event()
        self._busy = 0
        self._drained = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self._retries: set[asyncio.TimerHandle] = set()
        self._side_tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self._client.start()
        self._workers = [
            asyncio.create_task(self._work(), name=f"webhook-worker-{n}")
            for n in range(self._settings.webhook_concurrency)
        ]

    @property
    def pending(self) -> int:
        """Deliveries waiting, in flight or waiting to retry."""
        return self._queue.waiting + self._busy + len(self._retries)

    def submit(self, tenant_id: str, event_name: str, body: dict[str, Any], hooks: list[Webhook]) -> None:
        """Queue one delivery of ``body`` (which has an ``id``) per subscribed, enabled webhook; returns at once."""
        payload = orjson.dumps(body)
        notified = [False]
        for hook in hooks:
            if hook.enabled and event_name in hook.events:
                self._enqueue(_Delivery(tenant_id, hook, event_name, body, payload, notified))

    def _enqueue(self, delivery: _Delivery) -> None:
        if self._queue.put(delivery.tenant_id, delivery):
            WAITING.set(self._queue.waiting)
            self._wakeup.set()
            return
        DROPPED.inc()
        log.error("webhook_queue_full", tenant_id=delivery.tenant_id, webhook_id=delivery.hook.id)
        self._background(self._report(delivery, OutboundResult("connection_failed"), "failed", "queue_full"))

    def _background(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def _work(self) -> None:
        while True:
            self._wakeup.clear()
            job = self._queue.take()
            if job is None:
                await self._wakeup.wait()
                continue
            WAITING.set(self._queue.waiting)
            tenant_id, delivery = job
            self._busy += 1
            try:
                await self._attempt(delivery)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug in one delivery must not take a worker down
                log.exception("webhook_delivery_crashed", webhook_id=delivery.hook.id)
            finally:
                self._busy -= 1
                self._queue.done(tenant_id)
                self._wakeup.set()  # a slot of this tenant is free again
                if not self._queue.waiting and not self._busy:
                    self._drained.set()

    async def _attempt(self, delivery: _Delivery) -> None:
        settings = self._settings
        hook = delivery.hook
        try:
            secret = self._secrets.open(hook.secret, webhook_secret_context(hook.tenant_id, hook.id))
        except SecretUnavailableError as exc:
            log.error("webhook_secret_unavailable", webhook_id=hook.id, error=str(exc))
            await self._report(delivery, OutboundResult("connection_failed"), "failed", "secret_unavailable")
            return
        headers = signed_headers(secret, delivery.payload)
        headers[EVENT_HEADER] = delivery.event_name
        headers[DELIVERY_HEADER] = delivery.delivery_id
        headers["Content-Type"] = "application/json"
        result = await self._client.post(hook.url, delivery.payload, headers)
        if result.delivered:
            outcome: Outcome = "delivered"
        elif result.retryable and delivery.attempt < settings.webhook_max_attempts:
            outcome = "retrying"
        else:
            outcome = "failed"
        ATTEMPTS.labels(outcome).inc()
        await self._report(delivery, result, outcome, "" if result.delivered else result.describe())
        if outcome == "delivered":
            if not delivery.notified[0]:
                delivery.notified[0] = True
                await self._on_delivered(delivery.body)
        elif outcome == "failed":
            log.warning("webhook_failed", webhook_id=hook.id, outcome=result.describe(), attempts=delivery.attempt)
        else:
            delay = backoff_delay(
                delivery.attempt, settings.webhook_backoff_base_seconds, settings.webhook_backoff_max_seconds
            )
            delivery.attempt += 1
            self._retry_later(delivery, delay)

    def _retry_later(self, delivery: _Delivery, delay: float) -> None:
        handle: asyncio.TimerHandle | None = None

        def requeue() -> None:
            assert handle is not None
            self._retries.discard(handle)
            self._enqueue(delivery)

        handle = asyncio.get_running_loop().call_later(delay, requeue)
        self._retries.add(handle)

    async def _report(self, delivery: _Delivery, result: OutboundResult, outcome: Outcome, error: str) -> None:
        attempt = Attempt(
            delivery.tenant_id,
            delivery.hook.id,
            delivery.event_id,
            delivery.delivery_id,
            masked_url(delivery.hook.url),
            delivery.attempt if error != "queue_full" else 0,
            result.status,
            outcome,
            error,
            result.duration_ms,
            time.time() - result.duration_ms / 1000,
        )
        try:
            await self._on_attempt(attempt)
        except Exception as exc:  # recording must never break delivery
            log.error("webhook_attempt_not_recorded", error=repr(exc), webhook_id=attempt.webhook_id)

    async def stop(self, grace_seconds: float = 2.0) -> None:
        """Give waiting and in-flight deliveries a moment, then cancel the rest (they are not
        persisted: the alert event is stored, its remaining attempts are lost)."""
        if self._queue.waiting or self._busy:
            self._drained.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), grace_seconds)
        for handle in self._retries:
            handle.cancel()
        self._retries.clear()
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []
        if self._side_tasks:
            await asyncio.wait(set(self._side_tasks), timeout=grace_seconds)
        await self._client.close()
