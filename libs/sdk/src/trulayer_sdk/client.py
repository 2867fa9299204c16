"""``TruLayerClient``: the public TruLayer Python SDK's client, with the SLA's fail-open ingest.

A drop-in for ``trulayer.TruLayerClient`` (same constructor arguments, ``trace()``,
``feedback()``, ``flush()``, ``shutdown()``), plus the fail modes of the SLA: a bounded
buffer (``max_buffer``, drop-oldest), background sending with backoff, ``on_ingest_failure``,
deterministic ``sample_rate``, counters (:meth:`TruLayerClient.stats`). An application switches
by changing its import (``from trulayer_sdk import TruLayerClient``) and pointing ``endpoint``
at this platform.

``policy`` (optional) is the client of the control plane's policies (``decide(model, ...)``):
instrumentations consult it before each LLM call (:mod:`trulayer_sdk.instruments.openai`).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import warnings
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from trulayer_sdk.sender import BackgroundSender, FailureMode, FlushResult, IngestStats
from trulayer_sdk.trace import TraceContext

DEFAULT_ENDPOINT = "https://api.trulayer.ai"


class Decision(Protocol):
    """What a policy decides for one call (``trulayer_sdk``'s ``PolicyClient.decide``). Read-only
    members, so that an immutable decision (``trulayer_sdk.policy.Decision``) satisfies it."""

    @property
    def decision(self) -> str: ...  # allow | block | route

    @property
    def target_model(self) -> str | None: ...

    @property
    def rule_id(self) -> str | None: ...

    @property
    def reason(self) -> str | None: ...

    @property
    def dry_run(self) -> bool: ...


class PolicyDecider(Protocol):
    def decide(
        self,
        model: str,
        project_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        request_key: str | None = None,
    ) -> Decision: ...


class TruLayerClient:
    """Create one per process (or per project) and keep it.

    ``on_ingest_failure``: ``"log"`` (default) never raises into the application; ``"throw"``
    raises from ``flush()``/``shutdown()`` when not everything was delivered, and from recording
    once a permanent error (401/403) is latched or when the buffer overflowed.
    """

    def __init__(
        self,
        api_key: str = "",
        project_name: str | None = None,
        endpoint: str | None = None,
        batch_size: int = 50,
        flush_interval: float = 2.0,
        sample_rate: float = 1.0,
        scrub_fn: Callable[[str], str] | None = None,
        metadata_validator: Callable[[dict[str, Any]], None] | None = None,
        project_id: str | None = None,  # deprecated alias of project_name
        *,
        max_buffer: int = 10_000,
        on_ingest_failure: FailureMode = "log",
        timeout: float = 5.0,
        policy: PolicyDecider | None = None,
    ) -> None:
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError(f"sample_rate must be between 0.0 and 1.0, got {sample_rate}")
        if on_ingest_failure not in ("log", "throw"):
            raise ValueError("on_ingest_failure must be 'log' or 'throw'")
        name = project_name or project_id
        if not name:
            raise TypeError("trulayer: project_name is required")
        if project_id and not project_name:
            warnings.warn("trulayer: `project_id` is deprecated; use `project_name`", DeprecationWarning, stacklevel=2)
        self.project_name = name
        self.endpoint = endpoint or os.environ.get("TRULAYER_ENDPOINT") or DEFAULT_ENDPOINT
        self.sample_rate = sample_rate
        self.scrub_fn = scrub_fn
        self.metadata_validator = metadata_validator
        self.policy = policy
        self._sender = BackgroundSender(
            api_key=api_key,
            endpoint=self.endpoint,
            batch_size=batch_size,
            flush_interval=flush_interval,
            max_buffer=max_buffer,
            timeout=timeout,
            on_ingest_failure=on_ingest_failure,
        )
        # At exit, give buffered traces a last chance (without keeping the client alive).
        atexit.register(_shutdown_at_exit, weakref.ref(self))

    def trace(
        self,
        name: str | None = None,
        session_id: str | None = None,
        external_id: str | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> TraceContext:
        return TraceContext(
            self, name=name, session_id=session_id, external_id=external_id, tags=tags, metadata=metadata
        )

    def feedback(
        self,
        trace_id: str,
        label: str,
        score: float | None = None,
        comment: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Feedback on a trace (``POST /v1/feedback``), sent in the background like traces."""
        payload = {"trace_id": trace_id, "label": label, "score": score, "comment": comment, "metadata": metadata or {}}
        self._record_item("feedback", payload, raising=True)

    def flush(self, timeout: float = 5.0) -> FlushResult:
        """Send what is buffered now; returns after at most ``timeout`` seconds."""
        return self._sender.flush(timeout)

    def shutdown(self, timeout: float = 5.0) -> FlushResult:
        """Flush (at most ``timeout``), then stop sending; called at process exit."""
        return self._sender.stop(timeout)

    def stats(self) -> IngestStats:
        return self._sender.stats()

    @property
    def fatal_error(self) -> Exception | None:
        """The permanent error (401/403) that disabled sending, if any."""
        return self._sender.fatal_error

    def _record(self, payload: dict[str, Any], raising: bool = True) -> None:
        self._record_item("trace", payload, raising)

    def _record_item(self, kind: Any, payload: dict[str, Any], raising: bool) -> None:
        try:
            self._sender.enqueue(kind, payload)
        except Exception:
            # Only "throw" mode raises, by the application's choice, and never over an exception
            # of the application's own (``raising`` is false when the traced block raised).
            if raising and self._sender.mode == "throw":
                raise


def _shutdown_at_exit(ref: weakref.ref[TruLayerClient]) -> None:
    client = ref()
    if client is not None:
        with contextlib.suppress(Exception):
            client.shutdown(timeout=2.0)
