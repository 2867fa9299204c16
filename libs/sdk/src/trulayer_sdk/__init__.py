"""TruLayer Python SDK (``trulayer_sdk``): a drop-in for the public ``trulayer`` client API
with the SLA's fail modes. Ingest fails open: traces are buffered in memory (bounded,
drop-oldest) and sent in the background with backoff; recording never blocks on the network
and, by default, never raises. Policies fail closed: :class:`PolicyClient` decides locally from
the tenant's cached policy bundle (:mod:`trulayer_sdk.policy`). See ``libs/sdk/README.md``.
"""

from __future__ import annotations

from typing import Any

from trulayer_sdk.client import Decision, PolicyDecider, TruLayerClient
from trulayer_sdk.errors import (
    BufferOverflowError,
    ForbiddenError,
    InvalidAPIKeyError,
    PolicyBlockedError,
    ProjectArchivedError,
    TruLayerError,
    TruLayerFlushError,
)
from trulayer_sdk.instruments import instrument_openai, uninstrument_openai
from trulayer_sdk.policy import PolicyClient
from trulayer_sdk.pricing import ModelPrice, cost_of
from trulayer_sdk.sender import FlushResult, IngestStats
from trulayer_sdk.trace import SpanContext, TraceContext, current_trace

_global_client: TruLayerClient | None = None


def init(api_key: str, project_name: str | None = None, **kwargs: Any) -> TruLayerClient:
    """Create the process's client (``TruLayerClient``'s arguments) and keep it for
    :func:`get_client`. Call once at start-up."""
    global _global_client
    _global_client = TruLayerClient(api_key=api_key, project_name=project_name, **kwargs)
    return _global_client


def get_client() -> TruLayerClient:
    if _global_client is None:
        raise RuntimeError("trulayer_sdk.init() has not been called")
    return _global_client


__all__ = [
    "BufferOverflowError",
    "Decision",
    "FlushResult",
    "ForbiddenError",
    "IngestStats",
    "InvalidAPIKeyError",
    "ModelPrice",
    "PolicyBlockedError",
    "PolicyClient",
    "PolicyDecider",
    "ProjectArchivedError",
    "SpanContext",
    "TraceContext",
    "TruLayerClient",
    "TruLayerError",
    "TruLayerFlushError",
    "cost_of",
    "current_trace",
    "get_client",
    "init",
    "instrument_openai",
    "uninstrument_openai",
]
