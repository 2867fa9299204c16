"""Failure types of API.md (``GET /v1/traces?failure_type=``), derived from a trace's error text."""

from __future__ import annotations

import re

FAILURE_TYPES = ("timeout", "rate_limit", "invalid_response", "context_length")

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("rate_limit", re.compile(r"rate.?limit|too many requests|\b429\b|quota exceeded", re.I)),
    (
        "context_length",
        re.compile(r"context.?(length|window)|maximum context|too many tokens|token limit", re.I),
    ),
    ("timeout", re.compile(r"time.?out|timed out|deadline exceeded|\b504\b|\b408\b", re.I)),
    (
        "invalid_response",
        re.compile(r"invalid.?response|malformed|parse|json|schema|unexpected (format|response)", re.I),
    ),
)


def classify_failure(error: str | None) -> str:
    """'' for no error, one of :data:`FAILURE_TYPES`, or 'other'."""
    if not error:
        return ""
    for name, pattern in _PATTERNS:
        if pattern.search(error):
            return name
    return "other"
