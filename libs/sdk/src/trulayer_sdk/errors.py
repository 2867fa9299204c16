"""The SDK's exceptions. Recording never raises them in the default ``on_ingest_failure='log'``
mode: ingest failures are logged (rate-limited) and counted instead. They surface when the
application asks for them (``on_ingest_failure='throw'``) or, for a policy block, by design."""

from __future__ import annotations

from typing import Any


class TruLayerError(Exception):
    """Base class of every TruLayer SDK exception."""


class TruLayerFlushError(TruLayerError):
    """``flush()``/``shutdown()`` in ``throw`` mode when not everything was delivered.
    ``result`` is the :class:`~trulayer_sdk.sender.FlushResult` of that flush."""

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


class BufferOverflowError(TruLayerError):
    """``throw`` mode: recording this trace pushed the oldest buffered item out (the new one is
    kept; the buffer stays bounded)."""


class InvalidAPIKeyError(TruLayerError):
    """The API answered 401: the key is unknown, revoked or expired. Permanent for the client:
    buffered and future items are dropped (retrying cannot succeed)."""

    def __init__(self, code: str = "invalid_api_key") -> None:
        super().__init__("API key is invalid or has expired — check your configuration.")
        self.code = code


class ForbiddenError(TruLayerError):
    """The API answered 403 (the key may not ingest here). Permanent for the client."""

    def __init__(self, message: str = "Trace export disabled: the API answered 403.") -> None:
        super().__init__(message)


class ProjectArchivedError(ForbiddenError):
    """403 ``error.project.archived``: the project is archived. Permanent for the client."""

    def __init__(self) -> None:
        super().__init__("Project is archived — trace export disabled. Unarchive the project to resume.")


class PolicyBlockedError(TruLayerError):
    """A policy decided ``block`` for this call (not in dry run): the LLM was not called.
    ``decision`` is the policy client's decision (``decision``, ``target_model``, ``rule_id``,
    ``reason``, ``dry_run``)."""

    def __init__(self, decision: Any) -> None:
        rule = getattr(decision, "rule_id", None)
        reason = getattr(decision, "reason", None) or "blocked by policy"
        super().__init__(f"{reason} (rule {rule})" if rule else reason)
        self.decision = decision
