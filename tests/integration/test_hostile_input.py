"""Input that used to make a 500 or wrap silently (issue 15, finding 5): each is a 4xx naming
the problem, or stored faithfully. Never a 500."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import aiohttp
import orjson
import pytest

from tests.integration.conftest import Harness, Tenant, eventually, trace
from tests.integration.test_bad_input import expect_error

BIG = 2**64  # one past what orjson (and ClickHouse's 64-bit integers) hold


async def raw_request(url: str, request: bytes) -> tuple[int, bytes]:
    """Send bytes as they are (aiohttp's client would refuse non-ASCII header bytes)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    await writer.drain()
    response = await reader.read(65536)
    writer.close()
    status = int(response.split(b" ", 2)[1])
    return status, response.split(b"\r\n\r\n", 1)[1]


@pytest.mark.parametrize(
    "header",
    [
        b"X-Api-Key: tl_\xc3\xa9t\xc3\xa9-not-a-key",
        b"X-Api-Key: tl_\xff\xfe\xfd",
        b"Authorization: Bearer tl_\xe2\x82\xac\xe2\x82\xac",
        b"Authorization: Bearer \xff.\xfe.\xfd",
    ],
)
async def test_non_ascii_credentials_are_401(harness: Harness, header: bytes) -> None:
    for method, path, body in ((b"GET", b"/v1/traces", b""), (b"POST", b"/v1/ingest", b'{"name":"x"}')):
        request = (
            method + b" " + path + b" HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n"
            b"Connection: close\r\n\r\n" + body
        )
        status, answer = await raw_request(harness.gateway_url, request)
        assert status == 401, answer
        assert orjson.loads(answer)["code"] == "unauthorized"


async def test_non_ascii_headers_forwarded_to_the_control_plane_are_not_a_500(harness: Harness, tenant: Tenant) -> None:
    request = (
        b"GET /v1/alerts HTTP/1.1\r\nHost: x\r\nX-Api-Key: " + tenant.key.encode() + b"\r\n"
        b"Accept: \xff\xfe application/json\r\nIf-None-Match: \xe2\x82\xac\r\nConnection: close\r\n\r\n"
    )
    status, answer = await raw_request(harness.gateway_url, request)
    assert status < 500, answer


def body_with(*, path: str = "/v1/ingest", **fields: Any) -> tuple[str, bytes]:
    return path, orjson.dumps(trace(**fields))


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"name":"x","metadata":{"n":18446744073709551616}}', "metadata.n"),
        (b'{"name":"x","input":{"a":[1,2,-9223372036854775809]}}', "input.a.2"),
        (b'{"name":"x","output":123456789012345678901234567890}', "output"),
        (b'{"name":"x","spans":[{"name":"s","metadata":{"k":99999999999999999999}}]}', "spans.0.metadata.k"),
        (b'{"name":"x","metadata":{"x":NaN}}', "metadata.x"),
        (b'{"name":"x","metadata":{"x":Infinity}}', "metadata.x"),
        (b'{"name":"x","metadata":{"x":-Infinity}}', "metadata.x"),
        (b'{"name":"x","input":[1e999]}', "input.0"),
        (b'{"name":"x","latency_ms":1e999}', "latency_ms"),
        (b'{"name":"x","latency_ms":NaN}', "latency_ms"),
        (b'{"name":"x","cost":1e308}', "cost"),
        (b'{"name":"x","latency_ms":1e308,"ended_at":"2026-01-01T00:00:00Z"}', "latency_ms"),
        (b'{"name":"x","prompt_tokens":5000000000}', "prompt_tokens"),
        (b'{"name":"x","spans":[{"name":"s","completion_tokens":4294967296}]}', "spans.0.completion_tokens"),
    ],
)
async def test_numbers_json_storage_cannot_keep_are_400_naming_the_field(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant, raw: bytes, field: str
) -> None:
    headers = {**tenant.headers, "Content-Type": "application/json"}
    async with http.post(f"{harness.gateway_url}/v1/ingest", data=raw, headers=headers) as resp:
        body = await expect_error(resp, 400, "validation_error", field)
    assert body["details"][0]["field"] == field
    batch = b'{"traces":[{"name":"ok"},' + raw + b"]}"
    async with http.post(f"{harness.gateway_url}/v1/ingest/batch", data=batch, headers=headers) as resp:
        await expect_error(resp, 400, "validation_error", f"traces.1.{field}")


async def test_numbers_json_storage_cannot_keep_are_400_on_every_json_route(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant
) -> None:
    """Found by the OpenAPI fuzzer: an integer beyond 64 bits in feedback metadata was a 500 and
    killed the feedback writer. Every JSON body (free-form fields included) is now checked."""
    sent = trace()
    async with http.post(f"{harness.gateway_url}/v1/ingest", json=sent, headers=tenant.headers) as resp:
        assert resp.status == 201
    big = 18446744073709551616
    session = harness.session_headers(tenant.id)
    cases = [
        ("/v1/feedback", tenant.headers, {"trace_id": sent["id"], "label": "good", "metadata": {"n": big}}),
        (
            "/v1/eval",
            tenant.headers,
            {"trace_id": sent["id"], "evaluator_type": "rule", "metric_name": "json_validity", "config": {"n": big}},
        ),
        (
            "/v1/control/decisions",
            tenant.headers,
            {"decisions": [{"model": "m", "decision": "allow", "metadata": {"n": big}}]},
        ),
        (
            "/v1/alerts",
            tenant.headers,
            {"metric": "volume", "operator": "gt", "threshold": 1, "name": "x", "extra": big},
        ),
        ("/v1/projects", session, {"name": "p", "extra": [1, 2, big]}),
    ]
    for path, headers, payload in cases:
        raw = _dump_big(payload)
        async with http.post(
            harness.gateway_url + path, data=raw, headers={**headers, "Content-Type": "application/json"}
        ) as resp:
            await expect_error(resp, 400, "validation_error", "64 bits")


def _dump_big(payload: Any) -> bytes:
    """JSON with integers beyond 64 bits (orjson refuses to write them; the standard library does)."""
    return json.dumps(payload).encode()


async def test_guardlayer_calls_are_bounded_too(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant) -> None:
    for call, field in (
        ({"model": "m", "latency_ms": 1e300}, "calls.0.latency_ms"),
        ({"model": "m", "latency_ms": 1, "tokens_in": 10**10}, "calls.0.tokens_in"),
        ({"model": "m", "latency_ms": 1, "metadata": {"n": BIG}}, "calls.0.metadata.n"),
    ):
        async with http.post(
            f"{harness.gateway_url}/v1/ingest/batch", json={"calls": [call]}, headers=tenant.headers
        ) as resp:
            await expect_error(resp, 400, "validation_error", field)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"started_at": "0001-01-01T00:00:00Z", "latency_ms": 5}, "started_at"),
        ({"ended_at": "0001-01-01T00:00:00Z", "latency_ms": 5}, "ended_at"),
        ({"ended_at": "9999-12-31T23:59:59Z"}, "ended_at"),
        ({"started_at": "1970-01-01T00:00:00Z"}, "started_at"),
        ({"spans": [{"name": "s", "start_time": "0001-01-01T00:00:00"}]}, "spans.0.start_time"),
        ({"spans": [{"name": "s", "end_time": "2999-01-01T00:00:00+02:00"}]}, "spans.0.end_time"),
        ({"events": [{"message": "m", "timestamp": "1900-01-01T00:00:00Z"}]}, "events.0.timestamp"),
    ],
)
async def test_timestamps_outside_the_window_are_400_naming_the_field(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant, fields: dict[str, Any], field: str
) -> None:
    async with http.post(f"{harness.gateway_url}/v1/ingest", json=trace(**fields), headers=tenant.headers) as resp:
        body = await expect_error(resp, 400, "validation_error", field)
    assert body["details"][0]["field"] == field


def cursor_at(when: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([when, "x"])).decode().rstrip("=")


@pytest.mark.parametrize(
    ("path", "param", "value"),
    [
        ("/v1/traces", "from", "0001-01-01T00:00:00Z"),
        ("/v1/traces", "from", "-62135596800"),
        ("/v1/traces", "to", "1899-12-31T23:59:59Z"),
        ("/v1/traces", "to", "9999-12-31T00:00:00Z"),
        ("/v1/traces", "from", "1e30"),
        ("/v1/traces", "cursor", cursor_at("0001-01-01T00:00:00Z")),
        ("/v1/traces", "cursor", cursor_at("9999-01-01T00:00:00")),
        ("/v1/metrics", "from", "0001-01-01T00:00:00Z"),
        ("/v1/metrics", "to", "-62135596800"),
        ("/v1/anomalies", "from", "0001-01-01T00:00:00Z"),
    ],
)
async def test_filters_and_cursors_out_of_range_are_400_naming_the_parameter(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant, path: str, param: str, value: str
) -> None:
    async with http.get(f"{harness.gateway_url}{path}", params={param: value}, headers=tenant.headers) as resp:
        body = await expect_error(resp, 400, "invalid_parameter", param)
    assert body["parameter"] == param


@pytest.mark.parametrize(
    "raw",
    [
        b'{"name":"x","input":"\\ud800"}',
        b'{"name":"x","metadata":{"\\udfff":1}}',
        b'{"name":"x","input":"\xed\xa0\x80"}',  # a surrogate encoded as UTF-8: not UTF-8
        b'{"name":"x","input":"\xff\xfe"}',
        b'{"name":"x","metadata":' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}",
        b'{"name":"x","input":' + b"[" * 5000 + b"]" * 5000 + b"}",
    ],
    ids=["lone-surrogate", "surrogate-key", "utf8-surrogate", "invalid-utf8", "deep-object", "deep-array"],
)
async def test_unencodable_strings_and_deep_nesting_are_4xx(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant, raw: bytes
) -> None:
    headers = {**tenant.headers, "Content-Type": "application/json"}
    async with http.post(f"{harness.gateway_url}/v1/ingest", data=raw, headers=headers) as resp:
        assert 400 <= resp.status < 500, await resp.text()
        assert (await resp.json())["code"] in ("malformed_json", "validation_error")


async def test_extreme_but_storable_values_are_stored_faithfully(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant
) -> None:
    """Values at the bounds, huge finite exponents in free-form JSON, 64-bit integers, nesting the
    parser accepts, and token sums beyond 32 bits (the columns were 32-bit: 5e9 became 705032704)."""
    nested: Any = 1
    for _ in range(60):
        nested = {"a": nested}
    sent = trace(
        latency_ms=604_800_000,
        cost=1_000_000,
        metadata={"big": 2**64 - 1, "small": -(2**63), "huge": 1e308, "tiny": 5e-324, "deep": nested},
        input="é€\U0001f600",
        spans=[{"name": f"s{i}", "prompt_tokens": 1_000_000_000, "completion_tokens": 1_000_000_000} for i in range(5)],
    )
    async with http.post(f"{harness.gateway_url}/v1/ingest", json=sent, headers=tenant.headers) as resp:
        assert resp.status == 201, await resp.text()

    async def stored() -> Any:
        async with http.get(f"{harness.gateway_url}/v1/traces/{sent['id']}", headers=tenant.headers) as resp:
            return await resp.json() if resp.status == 200 else None

    got = await eventually(stored)
    assert got["metadata"] == sent["metadata"]
    assert got["input"] == sent["input"]
    assert got["latency_ms"] == 604_800_000 and got["cost"] == 1_000_000
    assert got["prompt_tokens"] == 5_000_000_000 and got["completion_tokens"] == 5_000_000_000
    assert got["total_token_count"] == 10_000_000_000
    assert [s["prompt_tokens"] for s in got["spans"]] == [1_000_000_000] * 5
