"""The API's error type: every non-2xx answer is ``{"error", "code", "request_id", ...}``."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error with an HTTP status and a body as documented in API.md.

    ``error`` is human text (clients must not branch on it); ``code`` is the machine code.
    ``extra`` fields are merged into the body (``required_plan``, ``retry_after_seconds``,
    ``details``); ``headers`` are added to the response (``Retry-After``).
    """

    def __init__(
        self,
        status: int,
        error: str,
        code: str | None = None,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.code = code
        self.extra = extra or {}
        self.headers = headers or {}

    def body(self, request_id: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.error}
        if self.code:
            body["code"] = self.code
        body.update(self.extra)
        body["request_id"] = request_id
        return body


def bad_request(error: str, code: str = "bad_request", **extra: Any) -> ApiError:
    return ApiError(400, error, code, extra=extra)


def unauthorized(error: str = "Invalid API key") -> ApiError:
    return ApiError(401, error, "unauthorized")


def forbidden(error: str, code: str = "forbidden") -> ApiError:
    return ApiError(403, error, code)


def not_found(error: str = "Not found") -> ApiError:
    return ApiError(404, error, "not_found")


def unavailable(error: str, retry_after: int = 1, code: str = "unavailable") -> ApiError:
    return ApiError(
        503,
        error,
        code,
        extra={"retry_after_seconds": retry_after},
        headers={"Retry-After": str(retry_after)},
    )
