"""``PolicyClient``: local policy decisions that fail closed (seed 003, API.md "Control engine").

* :meth:`PolicyClient.decide` evaluates locally (:func:`trulayer_sdk.policy.decisions.decide`)
  from the cached bundle and the last live signals: no network round trip per call.
* The bundle is fetched from ``GET /v1/control/config`` (``If-None-Match`` → 304) and, with
  ``stream=True``, kept current by ``GET /v1/control/config/stream`` (SSE: the bundle on
  connect and on every change, live signals, heartbeats), so a kill switch reaches the client
  within milliseconds. Without the stream it is polled (every ``ttl_seconds / 3``), and
  conditions on live signals never fire (the client has none).
* **Fail closed**: the bundle is trusted for ``ttl_seconds`` after the last contact with the
  control plane (a fetch, a 304, a stream frame or heartbeat). Past that, or before any bundle
  arrived, decisions follow the safe default: the tenant's (from the last bundle) or the
  ``safe_default`` given here (``deny`` unless told otherwise). A kill switch seen on in the last
  bundle stays on. Every failed contact counts in ``control_unreachable`` (and logs
  ``trulayer.control_unreachable``, at most every 30 s).
* Decisions are reported in batches of ≤100 to ``POST /v1/control/decisions`` from a bounded
  buffer (``max_pending_reports``, oldest dropped and counted in ``reports_dropped``).
* Two daemon threads (sync, reports); :meth:`close` stops them and sends what is pending
  (bounded by ``close_timeout_seconds``).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from trulayer_sdk.errors import PolicyBlockedError
from trulayer_sdk.policy.bundle import PolicyBundle, SafeDefault
from trulayer_sdk.policy.decisions import Decision, DecisionRequest, decide, safe_default_decision
from trulayer_sdk.policy.signals import NO_SIGNALS, Signals
from trulayer_sdk.policy.sse import SseParser

log = logging.getLogger("trulayer")
CONFIG_PATH = "/v1/control/config"
STREAM_PATH = "/v1/control/config/stream"
DECISIONS_PATH = "/v1/control/decisions"
REPORT_BATCH = 100
_MAX_METADATA_KEYS = 32
_MAX_METADATA_CHARS = 1024
_WARN_EVERY_SECONDS = 30.0


def _flat_value(value: Any) -> str | int | float | bool | None:
    """A metadata value the gateway accepts: flat, finite, 64-bit; anything else as text."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return (value if isinstance(value, str) else str(value))[:_MAX_METADATA_CHARS]


def _clean_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    return {str(k)[:128]: _flat_value(v) for k, v in list((metadata or {}).items())[:_MAX_METADATA_KEYS]}


class PolicyClient:
    def __init__(
        self,
        api_key: str,
        endpoint: str = "http://127.0.0.1:8080",
        *,
        ttl_seconds: float = 60.0,
        stream: bool = True,
        safe_default: str = "deny",
        report_decisions: bool = True,
        report_interval_seconds: float = 1.0,
        max_pending_reports: int = 10_000,
        connect_timeout_seconds: float = 2.0,
        heartbeat_timeout_seconds: float = 45.0,
        initial_fetch: bool = True,
        close_timeout_seconds: float = 2.0,
    ) -> None:
        if safe_default not in ("deny", "allow"):
            raise ValueError("safe_default must be 'deny' or 'allow'")
        self.ttl_seconds = ttl_seconds
        self.stream = stream
        self._fallback = SafeDefault(safe_default)
        self._report = report_decisions
        self._report_interval = report_interval_seconds
        self._close_timeout = close_timeout_seconds
        headers = {"Authorization": f"Bearer {api_key}", "User-Agent": "trulayer-sdk-python/policy"}
        timeout = httpx.Timeout(10.0, connect=connect_timeout_seconds)
        base = endpoint.rstrip("/")
        self._http = httpx.Client(base_url=base, headers=headers, timeout=timeout)
        self._stream_http = httpx.Client(
            base_url=base,
            headers=headers,
            timeout=httpx.Timeout(heartbeat_timeout_seconds, connect=connect_timeout_seconds),
        )
        # (bundle, etag, signals, monotonic time of the last contact): replaced whole, read
        # without a lock by decide().
        self._state: tuple[PolicyBundle | None, str | None, Signals, float | None] = (None, None, NO_SIGNALS, None)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reports: deque[dict[str, Any]] = deque(maxlen=max_pending_reports)
        self._stream_response: httpx.Response | None = None
        self._last_warning = 0.0
        self.control_unreachable = 0
        self.bundles_received = 0
        self.reports_sent = 0
        self.reports_dropped = 0
        if initial_fetch:
            self._try_fetch()
        self._threads = [threading.Thread(target=self._sync_loop, name="trulayer-policy-sync", daemon=True)]
        if report_decisions:
            self._threads.append(
                threading.Thread(target=self._report_loop, name="trulayer-policy-reports", daemon=True)
            )
        for thread in self._threads:
            thread.start()

    # ------------------------------------------------------------------ deciding

    @property
    def bundle(self) -> PolicyBundle | None:
        """The last bundle received (fresh or not)."""
        return self._state[0]

    @property
    def fresh(self) -> bool:
        """Whether decisions currently follow the bundle (contact within ``ttl_seconds``)."""
        contact = self._state[3]
        return contact is not None and time.monotonic() - contact <= self.ttl_seconds

    def decide(
        self,
        model: str,
        project_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        request_key: str | None = None,
        *,
        retry_depth: int = 0,
        cascade_depth: int = 0,
    ) -> Decision:
        """The decision for a call to ``model``, taken locally; never raises, never blocks on I/O."""
        bundle, _, signals, contact = self._state
        fresh = contact is not None and time.monotonic() - contact <= self.ttl_seconds
        key = request_key or uuid.uuid4().hex
        resolved = bundle.project_id(project_id) if bundle is not None else (project_id or "")
        request = DecisionRequest(
            model=model,
            project_id=resolved,
            request_key=key,
            now=time.time(),
            retry_depth=retry_depth,
            cascade_depth=cascade_depth,
            metadata=metadata or {},
        )
        if bundle is not None and fresh:
            decision = decide(bundle, signals, request)
        elif bundle is not None:
            decision = safe_default_decision(bundle.safe_default, request, bundle.killswitch)
        else:
            decision = safe_default_decision(self._fallback, request)
        if self._report:
            self._queue_report(decision, request, project_id)
        return decision

    def check(self, model: str, project_id: str | None = None, **kwargs: Any) -> Decision:
        """:meth:`decide`, raising :class:`~trulayer_sdk.errors.PolicyBlockedError` (the SDK's one
        policy error, the OpenAI instrumentation's too) when the decision is ``block``."""
        decision = self.decide(model, project_id, **kwargs)
        if decision.blocked:
            raise PolicyBlockedError(decision)
        return decision

    # ------------------------------------------------------------------ the bundle

    def _touch(self) -> None:
        bundle, etag, signals, _ = self._state
        self._state = (bundle, etag, signals, time.monotonic())

    def _apply_bundle(self, body: str | bytes, etag: str | None) -> None:
        bundle = PolicyBundle.from_json(json.loads(body))
        with self._lock:
            _, _, signals, _ = self._state
            self._state = (bundle, etag, signals, time.monotonic())
            self.bundles_received += 1

    def _apply_signals(self, body: str) -> None:
        signals = Signals.from_json(json.loads(body))
        with self._lock:
            bundle, etag, _, contact = self._state
            self._state = (bundle, etag, signals, contact)

    def _unreachable(self, error: object) -> None:
        self.control_unreachable += 1
        now = time.monotonic()
        if now - self._last_warning >= _WARN_EVERY_SECONDS:
            self._last_warning = now
            log.warning(
                "trulayer.control_unreachable: %s (count %d, bundle %s)",
                error,
                self.control_unreachable,
                "fresh" if self.fresh else ("stale" if self.bundle else "none"),
            )

    def _fetch(self) -> None:
        etag = self._state[1]
        headers = {"If-None-Match": etag} if etag else {}
        response = self._http.get(CONFIG_PATH, headers=headers)
        if response.status_code == 304:
            self._touch()
            return
        if response.status_code != 200:
            raise httpx.HTTPStatusError(f"HTTP {response.status_code}", request=response.request, response=response)
        self._apply_bundle(response.content, response.headers.get("ETag"))

    def _try_fetch(self) -> bool:
        try:
            self._fetch()
            return True
        except (httpx.HTTPError, ValueError) as exc:
            self._unreachable(exc)
            return False

    def _follow_stream(self) -> None:
        """Read the config stream until it ends; every line is a contact."""
        parser = SseParser()
        with self._stream_http.stream("GET", STREAM_PATH, headers={"Accept": "text/event-stream"}) as response:
            if response.status_code != 200:
                raise httpx.HTTPStatusError(f"HTTP {response.status_code}", request=response.request, response=response)
            self._stream_response = response
            try:
                for line in response.iter_lines():
                    if self._stop.is_set():
                        return
                    self._touch()
                    event = parser.feed(line)
                    if event is None:
                        continue
                    if event.event == "bundle":
                        self._apply_bundle(event.data, event.id)
                    elif event.event == "signals":
                        self._apply_signals(event.data)
            finally:
                self._stream_response = None
        raise httpx.ReadError("config stream ended")

    def _sync_loop(self) -> None:
        backoff = 0.5
        poll_every = max(0.5, min(self.ttl_seconds / 3, 30.0))
        while not self._stop.is_set():
            if not self.stream:
                self._try_fetch()
                self._stop.wait(poll_every)
                continue
            try:
                self._follow_stream()
            except Exception as exc:  # any failure of the stream (closing it from close() included)
                if self._stop.is_set():
                    return
                self._unreachable(exc)
            # The stream is down: a plain fetch keeps the bundle fresh if only the stream failed.
            if self._try_fetch():
                backoff = 0.5
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 10.0)

    # ------------------------------------------------------------------ reports

    def _queue_report(self, decision: Decision, request: DecisionRequest, project_id: str | None) -> None:
        if len(self._reports) == self._reports.maxlen:
            self.reports_dropped += 1
        self._reports.append(
            {
                **decision.to_json(),
                "id": uuid.uuid4().hex,
                "decided_at": datetime.fromtimestamp(request.now, UTC).isoformat(),
                "project_id": request.project_id or project_id,
                "model": request.model,
                "request_id": request.request_key,
                "retry_depth": request.retry_depth,
                "cascade_depth": request.cascade_depth,
                "metadata": _clean_metadata(request.metadata),
            }
        )

    def _send_reports(self) -> bool:
        """Send one batch; False when it could not be delivered (it is put back)."""
        batch: list[dict[str, Any]] = []
        while self._reports and len(batch) < REPORT_BATCH:
            batch.append(self._reports.popleft())
        if not batch:
            return True
        try:
            response = self._http.post(DECISIONS_PATH, json={"decisions": batch})
        except httpx.HTTPError as exc:
            self._requeue(batch)
            self._unreachable(exc)
            return False
        if response.status_code >= 500 or response.status_code == 429:
            self._requeue(batch)
            return False
        if response.status_code >= 400:  # refused for good (e.g. a key without the ingest scope)
            self.reports_dropped += len(batch)
            log.error("trulayer.decision_reports_refused: HTTP %d", response.status_code)
            return True
        self.reports_sent += len(batch)
        return True

    def _requeue(self, batch: list[dict[str, Any]]) -> None:
        room = (self._reports.maxlen or 0) - len(self._reports)
        keep = batch[-room:] if room > 0 else []
        self.reports_dropped += len(batch) - len(keep)
        self._reports.extendleft(reversed(keep))

    def _report_loop(self) -> None:
        while not self._stop.wait(self._report_interval):
            while self._reports and self._send_reports():
                if self._stop.is_set():
                    break

    def flush_reports(self, timeout: float = 2.0) -> int:
        """Send pending reports for at most ``timeout`` seconds; returns how many are left."""
        deadline = time.monotonic() + timeout
        while self._reports and time.monotonic() < deadline:
            if not self._send_reports():
                break
        return len(self._reports)

    def close(self) -> None:
        """Stop the threads and send pending reports (bounded by ``close_timeout_seconds``)."""
        self._stop.set()
        response = self._stream_response
        if response is not None:
            response.close()
        self._stream_http.close()
        for thread in self._threads:
            thread.join(self._close_timeout)
        if self._report:
            self.flush_reports(self._close_timeout)
        self._http.close()

    def __enter__(self) -> PolicyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
