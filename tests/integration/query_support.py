"""Known traces for the query-API tests, and the answers computed from them in Python.

:func:`dataset` builds traces spread over whole hours of the recent past (some exactly on an
hour's edge), with every kind of value the fields can take: models (and none), errors of each
failure type, null latencies and costs, token counts, tags as lists and maps, metadata with
declared keys (team, env: rolled up) and an undeclared one (owner), absent keys and null values.
:class:`Expected` answers a query over them the way API.md says the API answers it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from gateway.query.histogram import rank
from tests.integration.conftest import Harness, Tenant, eventually
from trulayer_common.failures import classify_failure

MODELS = ("gpt-4o", "claude-3-5", None)
ERRORS = (None, None, None, "Request timed out after 30s", "429 Too Many Requests", "cannot parse JSON", "boom")


def hour_floor(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


@dataclass
class Row:
    """A trace as stored, with the values the query fields read."""

    body: dict[str, Any]
    started: datetime

    def field(self, name: str) -> Any:
        b = self.body
        error = b.get("error")
        prompt, completion = b.get("prompt_tokens", 0), b.get("completion_tokens", 0)
        tags = b.get("tags") or []
        return {
            "traceId": b["id"],
            "projectId": b["project_id"],
            "name": b.get("name") or "",
            "modelName": b.get("model") or "",
            "status": "error" if error else "success",
            "errorType": classify_failure(error),
            "conversationID": b.get("session_id") or "",
            "latencyMs": b.get("latency_ms"),
            "costInUSD": b.get("cost"),
            "inputTokens": prompt,
            "outputTokens": completion,
            "totalTokens": prompt + completion,
            "tags": list(tags) if isinstance(tags, list) else [f"{k}:{v}" for k, v in tags.items()],
        }[name]

    def metadata(self, key: str) -> str:
        """A metadata value as the API reads it: '' when absent or null, text otherwise."""
        value = (self.body.get("metadata") or {}).get(key)
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        return "true" if value is True else "false" if value is False else str(value)

    def read(self, name: str) -> Any:
        return self.metadata(name.removeprefix("metadata.")) if name.startswith("metadata.") else self.field(name)


def dataset(project_id: str, base: datetime, n: int = 240, seed: int = 7) -> list[Row]:
    """``n`` traces over the 4 hours from ``base`` (an hour start)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        hour = (i // 40) % 4
        if i % 40 == 0:
            started = base + timedelta(hours=hour)  # exactly on an hour edge
        elif i % 40 == 1:
            started = base + timedelta(hours=hour + 1) - timedelta(milliseconds=1)  # the last ms of an hour
        else:
            started = base + timedelta(milliseconds=rng.randrange(4 * 3600 * 1000))
        metadata: dict[str, Any] = {}
        if i % 5:
            metadata["team"] = ["search", "ads", "a'b; --"][i % 3]
        if i % 3:
            metadata["env"] = "prod" if i % 2 else "staging"
        if i % 7 == 0:
            metadata["env"] = None  # null: reads as absent
        metadata["owner"] = f"user-{i % 9}"
        metadata["n"] = i % 4
        body: dict[str, Any] = {
            "id": f"q-{i:04d}-{rng.randrange(10**6)}",
            "project_id": project_id,
            "name": ["chat", "summarise", "embed"][i % 3],
            "latency_ms": None if i % 11 == 0 else round(rng.lognormvariate(5, 1), 3),
            "cost": None if i % 13 == 0 else round(rng.random() / 100, 6),
            "prompt_tokens": rng.randrange(0, 500),
            "completion_tokens": rng.randrange(0, 200),
            "error": ERRORS[i % len(ERRORS)],
            "tags": ["prod", f"k{i % 4}"] if i % 2 else {"env": "x", "tier": str(i % 3)},
            "metadata": metadata,
            "session_id": f"s-{i % 10}" if i % 4 else None,
            "started_at": iso(started),
        }
        if MODELS[i % 3] is not None:
            body["model"] = MODELS[i % 3]
        rows.append(Row(body, started))
    return rows


async def ingest(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant, rows: list[Row]) -> None:
    """Ingest through the API, then wait until every trace is stored and aggregated."""
    for start in range(0, len(rows), 100):
        batch = [dict(r.body) for r in rows[start : start + 100]]
        async with http.post(
            f"{harness.gateway_url}/v1/ingest/batch", json={"traces": batch}, headers=tenant.headers
        ) as resp:
            assert resp.status == 201, await resp.text()

    async def stored() -> bool:
        return len(await harness.stored_traces(tenant.id)) == len(rows)

    await eventually(stored, timeout=60)
    ch = harness.clickhouse

    async def rolled_up() -> bool:  # the views write within the insert; may trail the raw rows by ms
        found = await ch.query(
            f"SELECT toUInt64(sum(traces)) AS n FROM {ch.database}.trace_rollup_hour WHERE tenant_id = {{t:String}}",
            {"t": tenant.id},
        )
        return int(found[0]["n"] or 0) == len(rows)

    await eventually(rolled_up, timeout=30)


def matches(value: Any, operator: str, expected: Any, numeric: bool) -> bool:
    """A filter as API.md defines it: absent strings read '' and numbers null never match."""
    if operator == "IS_NULL":
        return (value is None or value == "") == bool(expected)
    if numeric and value is None:
        return False
    if operator == "EQUAL":
        return bool(value == expected)
    if operator == "NOT_EQUAL":
        return bool(value != expected)
    if operator == "IN":
        return value in expected
    if operator == "NOT_IN":
        return value not in expected
    if operator == "BETWEEN":
        return bool(expected[0] <= value <= expected[1])
    compare: dict[str, Callable[[Any, Any], bool]] = {
        "GREATER_THAN": lambda a, b: a > b,
        "GREATER_THAN_EQUAL": lambda a, b: a >= b,
        "LESS_THAN": lambda a, b: a < b,
        "LESS_THAN_EQUAL": lambda a, b: a <= b,
        "STRING_CONTAINS": lambda a, b: b in a,
        "STRING_NOT_CONTAINS": lambda a, b: b not in a,
        "STRING_STARTS_WITH": lambda a, b: a.startswith(b),
        "STRING_NOT_STARTS_WITH": lambda a, b: not a.startswith(b),
        "STRING_ENDS_WITH": lambda a, b: a.endswith(b),
        "STRING_NOT_ENDS_WITH": lambda a, b: not a.endswith(b),
        "ARRAY_HAS_ANY": lambda a, b: bool(set(a) & set(b)),
        "ARRAY_HAS_NONE": lambda a, b: not set(a) & set(b),
    }
    return compare[operator](value, expected)


NUMERIC = {"latencyMs", "costInUSD", "inputTokens", "outputTokens", "totalTokens"}
INTEGER = {"inputTokens", "outputTokens", "totalTokens"}
PERCENTILE = {"p5": 0.05, "p10": 0.1, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p90": 0.9, "p95": 0.95, "p99": 0.99}
PERCENTILE["p999"] = 0.999


def aggregate(rows: Iterable[Row], kind: str, column: str, seconds: float | None = None) -> Any:
    """One aggregation over rows, as the API answers it (percentiles: the true value of the rank
    the API reads; the test allows the histogram's error)."""
    rows = list(rows)
    values = [r.field(column) for r in rows]
    present = [v for v in values if v is not None and not (column not in NUMERIC and v == "")]
    if kind == "count":
        return len(present)
    if kind == "countDistinct":
        return len(set(present))
    if kind in ("sum", "rateSum", "ratePerMinute"):
        total = sum(present) if present else 0
        if kind == "rateSum":
            return total / seconds  # type: ignore[operator]
        if kind == "ratePerMinute":
            return total / (seconds / 60)  # type: ignore[operator]
        return total
    if not present:
        return None
    if kind in ("min", "rateMin"):
        value = min(present)
    elif kind in ("max", "rateMax"):
        value = max(present)
    elif kind in ("avg", "rateAvg"):
        value = sum(present) / len(present)
    else:
        ordered = sorted(present)
        value = ordered[rank(PERCENTILE[kind], len(ordered))]
    return value / seconds if kind.startswith("rate") else value  # type: ignore[operator]


def close(got: Any, want: Any, kind: str) -> bool:
    if want is None or got is None:
        return got is want
    if kind in PERCENTILE:
        return abs(got - want) <= 0.01 * abs(want) + 1e-9
    if isinstance(want, int) and not isinstance(want, bool) and kind in ("count", "countDistinct"):
        return got == want
    return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)


def now_utc() -> datetime:
    return datetime.now(UTC)
