"""Issue 15, findings 1 and 7: no way past the session wall, and API-key scopes enforced.

Finding 1: percent-encoded dot segments let any API key reach session-only routes through the
control-plane proxy (list and mint keys, create a tenant with GuardLayer compatibility off).
The gateway now refuses ambiguous paths before any decision and forwards only declared
operations on paths rebuilt from their templates; the control-engine checks every route's
declared access again on the forwarded principal.

Finding 7: an ``ingest``-scoped key read traces and metrics and created webhooks and rules.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from control_engine.app import create_app as create_control_engine
from gateway.resources import config_state
from tests.integration.conftest import INTERNAL_TOKEN, Harness, Tenant, eventually, free_port, trace
from trulayer_common.config import hash_api_key
from trulayer_common.principal import ForwardedPrincipal

TRAVERSALS = [
    ("GET", "/v1/alerts/%2e%2e/apikeys"),
    ("POST", "/v1/alerts/%2e%2e/apikeys"),
    ("GET", "/v1/alerts/..%2fapikeys"),
    ("GET", "/v1/alerts/%2E%2E/apikeys"),
    ("GET", "/v1/alerts/%252e%252e/apikeys"),
    ("GET", "/v1/failure-rules/%2e%2e/%2e%2e/v1/apikeys"),
    ("POST", "/v1/webhooks/%2e%2e/%2e%2e/internal/guardlayer/api-keys"),
    ("GET", "/v1/alerts/../apikeys"),
    ("GET", "/v1/webhooks/./../apikeys"),
]


async def _raw_request(url: str, method: str, path: str, headers: dict[str, str], body: bytes = b"{}") -> int:
    """Send ``path`` byte for byte (an HTTP client would normalise it first)."""
    host, port = url.removeprefix("http://").split(":")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if method != "GET":
        lines.append(f"Content-Length: {len(body)}")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + (body if method != "GET" else b""))
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    return int(status_line.split()[1])


async def _key(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant, scopes: list[str]) -> str:
    async with http.post(
        f"{harness.gateway_url}/v1/apikeys",
        json={"name": "-".join(scopes), "scopes": scopes},
        headers=harness.session_headers(tenant.id),
    ) as resp:
        assert resp.status == 201, await resp.text()
        secret: str = (await resp.json())["key"]
    state = harness.gateway_app[config_state]

    async def known() -> bool:
        return state.key_by_hash(hash_api_key(secret)) is not None

    await eventually(known)
    return secret


@pytest.mark.parametrize(("method", "path"), TRAVERSALS)
async def test_encoded_dot_segments_never_reach_session_routes(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant, method: str, path: str
):
    ingest_only = await _key(http, harness, tenant, ["ingest"])
    keys_before = len(harness.gateway_app[config_state].api_keys_of(tenant.id))
    tenants_before = len(harness.gateway_app[config_state].tenants)
    for headers in ({"Authorization": f"Bearer {ingest_only}"}, tenant.headers):
        body = b'{"name": "minted", "customer_name": "evil"}'
        status = await _raw_request(harness.gateway_url, method, path, headers, body)
        assert status in (400, 404), (path, status)
    # Nothing was listed or minted behind the wall.
    assert len(harness.gateway_app[config_state].api_keys_of(tenant.id)) == keys_before
    assert len(harness.gateway_app[config_state].tenants) == tenants_before


async def test_control_engine_checks_the_declared_access_itself(http: aiohttp.ClientSession, harness: Harness):
    """Defence in depth: a forwarded request whose principal may not call the route is refused
    by the control-engine even with the right internal token."""
    tenant = await harness.new_tenant()
    base = f"http://127.0.0.1:{harness.control_port}"

    def as_(kind: str, role: str, scopes: set[str]) -> dict[str, str]:
        key_id = "k" if kind == "api_key" else None
        principal = ForwardedPrincipal(tenant.id, kind, role, "tester", key_id, frozenset(scopes))  # type: ignore[arg-type]
        return {"X-Trulayer-Internal-Token": INTERNAL_TOKEN, **principal.to_headers()}

    cases: list[tuple[str, str, dict[str, str], Any, int, str | None]] = [
        ("GET", "/v1/apikeys", as_("api_key", "owner", {"owner"}), None, 403, "session_required"),
        ("POST", "/v1/apikeys", as_("api_key", "member", {"ingest"}), {"name": "x"}, 403, "session_required"),
        ("POST", "/v1/projects", as_("session", "viewer", set()), {"name": "p"}, 403, "insufficient_role"),
        ("POST", "/v1/alerts", as_("api_key", "member", {"ingest", "read"}), {}, 403, "insufficient_scope"),
        ("POST", "/v1/webhooks", as_("api_key", "member", {"ingest"}), {}, 403, "insufficient_scope"),
        ("DELETE", f"/v1/apikeys/{uuid.uuid4()}", as_("session", "member", set()), None, 403, "insufficient_role"),
        ("GET", "/v1/projects", {"X-Trulayer-Internal-Token": INTERNAL_TOKEN}, None, 401, "unauthorized"),
        ("GET", "/v1/projects", {}, None, 401, "unauthorized"),
    ]
    for method, path, headers, body, status, code in cases:
        async with http.request(method, base + path, json=body, headers=headers) as resp:
            assert resp.status == status, (method, path, await resp.text())
            assert (await resp.json()).get("code") == code, (method, path)
    status = await _raw_request(base, "GET", "/v1/alerts/%2e%2e/apikeys", as_("session", "owner", set()))
    assert status == 400


async def test_guardlayer_key_creation_needs_compat_on_in_the_control_engine(
    http: aiohttp.ClientSession, harness: Harness
):
    settings = harness.control_settings.model_copy(update={"guardlayer_compat": False})
    app = create_control_engine(settings, clickhouse=harness.clickhouse)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with http.post(
            f"http://127.0.0.1:{port}/internal/guardlayer/api-keys",
            json={"customer_name": "x"},
            headers={"X-Trulayer-Internal-Token": INTERNAL_TOKEN},
        ) as resp:
            assert resp.status == 404
    finally:
        await runner.cleanup()


async def test_scopes_are_enforced_per_route(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant):
    url = harness.gateway_url
    ingest_only = {"Authorization": f"Bearer {await _key(http, harness, tenant, ['ingest'])}"}
    read_only = {"Authorization": f"Bearer {await _key(http, harness, tenant, ['read'])}"}
    default = {"Authorization": f"Bearer {await _key(http, harness, tenant, ['ingest', 'read'])}"}
    writer = {"Authorization": f"Bearer {await _key(http, harness, tenant, ['read', 'write'])}"}
    rule = {"metric": "volume", "operator": "gt", "threshold": 1e6}
    hook = {"url": "https://example.com/hook", "secret": "s" * 24}
    expectations: list[tuple[str, str, dict[str, str], Any, int]] = [
        ("POST", "/v1/ingest", ingest_only, trace(), 201),
        ("GET", "/v1/traces", ingest_only, None, 403),
        ("GET", "/v1/metrics", ingest_only, None, 403),
        ("GET", "/v1/alerts", ingest_only, None, 403),
        ("POST", "/v1/alerts", ingest_only, rule, 403),
        ("POST", "/v1/webhooks", ingest_only, hook, 403),
        ("POST", "/v1/ingest", read_only, trace(), 403),
        ("GET", "/v1/traces", read_only, None, 200),
        ("GET", "/v1/alerts", read_only, None, 200),
        ("POST", "/v1/alerts", default, rule, 403),
        ("POST", "/v1/alerts", writer, rule, 201),
        ("POST", "/v1/alerts", harness.session_headers(tenant.id, role="viewer"), rule, 403),
        ("GET", "/v1/alerts", harness.session_headers(tenant.id, role="viewer"), None, 200),
    ]
    for method, path, headers, body, status in expectations:
        async with http.request(method, url + path, json=body, headers=headers) as resp:
            answer = await resp.json()
            assert resp.status == status, (method, path, headers, answer)
            if status == 403:
                assert answer["code"] in ("insufficient_scope", "insufficient_role"), answer
