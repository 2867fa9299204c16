"""The fail-open half of the SDK: traces and feedback leave from a background thread.

The application's threads only append to a :class:`~trulayer_sdk.buffer.DropOldestBuffer`
(memory, never the network). One daemon thread sends what is buffered:

* **Batches**: traces go ``POST /v1/ingest/batch`` at most ``batch_size`` (≤ 100) at a time,
  when that many are waiting or every ``flush_interval`` seconds; feedback goes one item per
  ``POST /v1/feedback`` (a 404 is retried a few times: the trace may be on its way).
* **Failures that may pass** (network errors, 408, 429, 5xx): the batch goes back to the
  front of the buffer and the next attempt waits an exponential backoff with full jitter (at
  least ``Retry-After``). Meanwhile the buffer keeps accepting; when it is full the oldest
  items are dropped (``trulayer.buffer_overflow``: a rate-limited warning and a counter).
* **Permanent failures**: 401 (bad key) and 403 (archived project, or no right to ingest) are
  latched: everything buffered and everything recorded afterwards is dropped and counted, no
  request is sent again. Another 4xx rejects the batch: it is halved until the rejected items
  are isolated, which are dropped and counted (the others are sent).
* :meth:`BackgroundSender.flush` asks for an immediate attempt and waits at most its timeout;
  it reports what was sent, dropped and is still pending.

In ``log`` mode nothing here raises into the application: problems are logged (at most once
per :data:`LOG_INTERVAL_SECONDS` per kind, with the count of the suppressed ones) and counted.
In ``throw`` mode, ``flush()`` raises :class:`~trulayer_sdk.errors.TruLayerFlushError` when not
everything was delivered, and recording raises the latched permanent error or
:class:`~trulayer_sdk.errors.BufferOverflowError`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from trulayer_sdk.backoff import Backoff
from trulayer_sdk.buffer import DropOldestBuffer
from trulayer_sdk.errors import (
    BufferOverflowError,
    ForbiddenError,
    InvalidAPIKeyError,
    ProjectArchivedError,
    TruLayerError,
    TruLayerFlushError,
)

logger = logging.getLogger("trulayer")
FailureMode = Literal["log", "throw"]
MAX_BATCH = 100  # the API's bound on a batch request
LOG_INTERVAL_SECONDS = 10.0
FEEDBACK_NOT_FOUND_RETRIES = 6  # about 13 s for a trace to be stored before its feedback is dropped
_RETRYABLE = frozenset({408, 425, 429})
_ARCHIVED = "error.project.archived"
_VERSION = "0.1.0"


@dataclass(frozen=True)
class FlushResult:
    """What one ``flush()`` achieved: items sent and dropped while it ran, items still pending."""

    sent: int
    dropped: int
    pending: int


@dataclass(frozen=True)
class IngestStats:
    """Counters since the client started (``trulayer.*`` names in the docs)."""

    sent: int
    dropped: int  # every item lost, whatever the reason (overflow, rejected, permanent failure)
    buffer_overflow: int  # trulayer.buffer_overflow: oldest items pushed out of a full buffer
    rejected: int  # items the API refused with a 4xx (other than 401/403)
    failed_requests: int  # send attempts that failed and were retried
    pending: int  # buffered or in flight
    disabled: bool  # a permanent failure (401/403) was latched


@dataclass(slots=True)
class Item:
    kind: Literal["trace", "feedback"]
    payload: dict[str, Any]
    not_found: int = 0  # 404s so far (feedback on a trace not stored yet)


def _same_kind(a: Item, b: Item) -> bool:
    return a.kind == b.kind == "trace"


class _Throttled:
    """A log line at most once per interval; counts what it held back."""

    def __init__(self, interval: float = LOG_INTERVAL_SECONDS) -> None:
        self._interval = interval
        self._last = -interval
        self._held = 0

    def log(self, level: int, event: str, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last < self._interval:
            self._held += 1
            return
        held, self._held, self._last = self._held, 0, now
        suffix = f" ({held} more since the last warning)" if held else ""
        logger.log(level, f"{event}: {message}{suffix}", *args)


class BackgroundSender:
    def __init__(
        self,
        *,
        api_key: str,
        endpoint: str,
        batch_size: int,
        flush_interval: float,
        max_buffer: int,
        timeout: float,
        on_ingest_failure: FailureMode,
        max_backoff: float = 30.0,
    ) -> None:
        self._endpoint = endpoint.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "User-Agent": f"trulayer-sdk-python/{_VERSION}",
        }
        self._batch_size = max(1, min(batch_size, MAX_BATCH))
        self._flush_interval = max(flush_interval, 0.01)
        self._timeout = timeout
        self.mode = on_ingest_failure
        self.buffer: DropOldestBuffer[Item] = DropOldestBuffer(max_buffer)
        self._backoff = Backoff(cap=max_backoff)
        self._cond = threading.Condition()
        self._urgent = False
        self._flushing = 0  # flush() calls waiting: send without waiting for the interval
        self._stopping = False
        self._in_flight = 0
        self._next_attempt = 0.0
        self._sent = self._dropped = self._rejected = self._failed = 0
        self._counts = threading.Lock()  # counters move on the app's threads and the sender's
        self._fatal: TruLayerError | None = None
        self._failing = False
        self._overflow_log = _Throttled()
        self._failure_log = _Throttled()
        self._reject_log = _Throttled()
        self._thread = threading.Thread(target=self._run, name="trulayer-sender", daemon=True)
        self._thread.start()

    # -- the application's side -------------------------------------------------------------

    @property
    def fatal_error(self) -> TruLayerError | None:
        """The latched permanent error (401/403), if any."""
        return self._fatal

    def enqueue(self, kind: Literal["trace", "feedback"], payload: dict[str, Any]) -> None:
        """Buffer an item for sending; never touches the network."""
        if self._fatal is not None or self._stopping:
            self._drop(1)
            if self.mode == "throw" and self._fatal is not None:
                raise self._fatal
            return
        pushed_out = self.buffer.add(Item(kind, payload))
        if pushed_out:
            self._drop(pushed_out)
            self._overflow_log.log(
                logging.WARNING,
                "trulayer.buffer_overflow",
                "buffer full (max_buffer=%d): dropped the oldest item; %d dropped so far",
                self.buffer.capacity,
                self.buffer.overflowed,
            )
        if len(self.buffer) >= self._batch_size:
            with self._cond:
                self._cond.notify()
        if pushed_out and self.mode == "throw":
            raise BufferOverflowError(f"TruLayer buffer full (max_buffer={self.buffer.capacity}): oldest item dropped")

    def flush(self, timeout: float) -> FlushResult:
        """Send now what is buffered; wait at most ``timeout`` seconds."""
        deadline = time.monotonic() + max(timeout, 0.0)
        sent, dropped = self._sent, self._dropped
        with self._cond:
            self._urgent = True  # one attempt now, even during a backoff
            self._flushing += 1
            self._cond.notify_all()
            try:
                while (len(self.buffer) or self._in_flight) and self._fatal is None and self._thread.is_alive():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            finally:
                self._flushing -= 1
            pending = len(self.buffer) + self._in_flight
        result = FlushResult(sent=self._sent - sent, dropped=self._dropped - dropped, pending=pending)
        if self.mode == "throw" and (result.pending or result.dropped or self._fatal is not None):
            raise TruLayerFlushError(
                f"trulayer: flush left {result.pending} pending and {result.dropped} dropped", result
            ) from self._fatal
        return result

    def stop(self, timeout: float) -> FlushResult:
        """Flush (at most ``timeout``), then stop the thread; later items are dropped."""
        try:
            return self.flush(timeout)
        finally:
            with self._cond:
                self._stopping = True
                self._cond.notify_all()

    def stats(self) -> IngestStats:
        return IngestStats(
            sent=self._sent,
            dropped=self._dropped,
            buffer_overflow=self.buffer.overflowed,
            rejected=self._rejected,
            failed_requests=self._failed,
            pending=len(self.buffer) + self._in_flight,
            disabled=self._fatal is not None,
        )

    # -- the sender thread ------------------------------------------------------------------

    def _run(self) -> None:
        last = time.monotonic()
        with httpx.Client(timeout=self._timeout, headers=self._headers) as http:
            while True:
                with self._cond:
                    while True:
                        if self._stopping:
                            return
                        now = time.monotonic()
                        waiting = len(self.buffer)
                        if waiting and self._fatal is None:
                            if self._urgent:
                                break
                            due = max(self._next_attempt, last + self._flush_interval)
                            if waiting >= self._batch_size or self._flushing:
                                due = self._next_attempt  # no interval wait; a backoff still holds
                            if now >= due:
                                break
                            self._cond.wait(due - now)
                        else:
                            self._cond.wait(self._flush_interval)
                    self._urgent = False
                    last = now
                    batch = self.buffer.take(self._batch_size, _same_kind)
                    self._in_flight = len(batch)
                try:
                    self._send(http, batch)
                except Exception as exc:  # a bug must not kill the thread: keep the items
                    logger.exception("trulayer.sender_error: %r", exc)
                    self._retry(batch, None, repr(exc))
                finally:
                    with self._cond:
                        self._in_flight = 0
                        self._cond.notify_all()

    def _send(self, http: httpx.Client, batch: list[Item]) -> None:
        if not batch:
            return
        if batch[0].kind == "trace":
            url, body = f"{self._endpoint}/v1/ingest/batch", {"traces": [item.payload for item in batch]}
        else:
            url, body = f"{self._endpoint}/v1/feedback", batch[0].payload
        try:
            response = http.post(url, content=json.dumps(body, default=str).encode())
        except httpx.HTTPError as exc:
            self._retry(batch, None, f"{type(exc).__name__}: {exc}")
            return
        status = response.status_code
        if status < 300:
            self._sent += len(batch)
            self._backoff.reset()
            self._next_attempt = 0.0
            if self._failing:
                self._failing = False
                logger.info("trulayer.ingest_recovered: sending again")
            return
        if status in (401, 403):
            self._latch(status, response)
            self._drop(len(batch) + self.buffer.clear())
            return
        if status in _RETRYABLE or status >= 500:
            self._retry(batch, _retry_after(response), f"HTTP {status}")
            return
        if status == 404 and batch[0].kind == "feedback" and batch[0].not_found < FEEDBACK_NOT_FOUND_RETRIES:
            # Feedback on a trace sent moments ago: the trace may not be stored yet. Not an
            # outage: a short wait of its own (0.25 s doubling, at most 5 s), no backoff.
            delay = min(0.25 * 2 ** batch[0].not_found, 5.0)
            batch[0].not_found += 1
            self._drop(self.buffer.put_back(batch))
            self._next_attempt = time.monotonic() + delay
            return
        if len(batch) > 1:  # isolate what the API refuses; send the rest
            half = len(batch) // 2
            self._send(http, batch[:half])
            self._send(http, batch[half:])
            return
        self._drop(1, rejected=True)
        self._reject_log.log(
            logging.WARNING,
            "trulayer.ingest_rejected",
            "the API refused a %s with HTTP %d: %s (dropped)",
            batch[0].kind,
            status,
            response.text[:300],
        )

    def _drop(self, count: int, rejected: bool = False) -> None:
        with self._counts:
            self._dropped += count
            if rejected:
                self._rejected += count

    def _retry(self, batch: list[Item], retry_after: float | None, error: str) -> None:
        self._failed += 1
        self._failing = True
        self._drop(self.buffer.put_back(batch))
        delay = self._backoff.next_delay(retry_after)
        self._next_attempt = time.monotonic() + delay
        self._failure_log.log(
            logging.WARNING,
            "trulayer.ingest_failed",
            "%s; retrying in %.1fs (%d pending)",
            error,
            delay,
            len(self.buffer),
        )

    def _latch(self, status: int, response: httpx.Response) -> None:
        try:
            body = response.json()
        except ValueError:
            body = {}
        code = body.get("code") if isinstance(body, dict) else None
        if status == 401:
            self._fatal = InvalidAPIKeyError(code or "invalid_api_key")
        elif code == _ARCHIVED:
            self._fatal = ProjectArchivedError()
        else:
            self._fatal = ForbiddenError(f"Trace export disabled: the API answered 403 ({code or 'forbidden'}).")
        logger.error("trulayer.ingest_disabled: %s — nothing more will be sent by this client", self._fatal)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None
