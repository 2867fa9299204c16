"""Projects and API keys through the gateway → control-engine, on the real Kafka, Redis and chDB."""

from __future__ import annotations

import asyncio
import io
import uuid
from typing import Any

import aiohttp

from gateway.resources import config_state
from tests.integration.conftest import INTERNAL_TOKEN, Harness, Tenant, eventually, free_port, trace
from trulayer_common.config import hash_api_key


async def _json(resp: aiohttp.ClientResponse) -> Any:
    return await resp.json()


async def _create_project(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant, name: str) -> dict[str, Any]:
    async with http.post(
        f"{harness.gateway_url}/v1/projects", json={"name": name}, headers=harness.session_headers(tenant.id)
    ) as resp:
        assert resp.status == 201, await resp.text()
        return dict(await resp.json())


async def test_projects_list_create_rename_and_duplicates(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant
):
    owner = harness.session_headers(tenant.id)
    created = await _create_project(http, harness, tenant, "checkout")
    assert created["archived"] is False
    async with http.get(f"{harness.gateway_url}/v1/projects", headers=owner) as resp:
        assert resp.status == 200
        names = {p["name"] for p in (await resp.json())["projects"]}
        assert names == {"default", "checkout"}
    async with http.post(f"{harness.gateway_url}/v1/projects", json={"name": "checkout"}, headers=owner) as resp:
        assert resp.status == 409
        body = await resp.json()
        assert body["code"] == "conflict"
        assert body["request_id"] == resp.headers["X-Request-Id"]
    async with http.patch(
        f"{harness.gateway_url}/v1/projects/{created['id']}", json={"name": "default"}, headers=owner
    ) as resp:
        assert resp.status == 409
    async with http.patch(
        f"{harness.gateway_url}/v1/projects/{created['id']}", json={"name": "payments"}, headers=owner
    ) as resp:
        assert resp.status == 200
        assert (await resp.json())["name"] == "payments"
    # The gateway resolves the new name on ingest.
    state = harness.gateway_app[config_state]
    await eventually(lambda: _true(state.project_of_tenant(tenant.id, "payments") is not None))
    async with http.post(
        f"{harness.gateway_url}/v1/ingest", json=trace(project_id="payments"), headers=tenant.headers
    ) as resp:
        assert resp.status == 201


async def _true(value: bool) -> bool:
    return value


async def test_retention_override_needs_pro(http: aiohttp.ClientSession, harness: Harness):
    starter = await harness.new_tenant(plan="starter")
    pro = await harness.new_tenant(plan="pro")
    body = {"name": "kept-long", "retention_days_override": 90}
    async with http.post(
        f"{harness.gateway_url}/v1/projects", json=body, headers=harness.session_headers(starter.id)
    ) as resp:
        assert resp.status == 402
        error = await resp.json()
        assert error["code"] == "plan_upgrade_required"
        assert error["required_plan"] == "pro"
    async with http.post(
        f"{harness.gateway_url}/v1/projects", json=body, headers=harness.session_headers(pro.id)
    ) as resp:
        assert resp.status == 201
        assert (await resp.json())["retention_days_override"] == 90

    # The override reaches storage: the rows of that project carry its TTL, others the default.
    kept, other = trace(project_id="kept-long"), trace()

    async def project_known() -> bool:  # an unknown name would fall back to the default project
        return harness.gateway_app[config_state].project_of_tenant(pro.id, "kept-long") is not None

    await eventually(project_known)
    async with http.post(
        f"{harness.gateway_url}/v1/ingest/batch", json={"traces": [kept, other]}, headers=pro.headers
    ) as resp:
        assert resp.status == 201

    async def stored() -> dict[str, int]:
        rows = await harness.clickhouse.query(
            f"SELECT id, retention_days FROM {harness.clickhouse.database}.traces FINAL WHERE tenant_id = {{t:String}}",
            {"t": pro.id},
        )
        return {r["id"]: int(r["retention_days"]) for r in rows} if len(rows) == 2 else {}

    retention = await eventually(stored)
    assert retention == {kept["id"]: 90, other["id"]: harness.worker_settings.default_retention_days}


async def test_archive_blocks_ingest_everywhere_and_unarchive_restores(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant
):
    owner = harness.session_headers(tenant.id)
    async with http.post(f"{harness.gateway_url}/v1/projects/{tenant.project_id}/archive", headers=owner) as resp:
        assert resp.status == 409
        assert (await resp.json())["code"] == "error.project.cannot_archive_last"
    await _create_project(http, harness, tenant, "second")
    _, second_runner, second_url = await harness.start_gateway(harness.gateway_settings)
    try:
        async with http.post(f"{harness.gateway_url}/v1/projects/{tenant.project_id}/archive", headers=owner) as resp:
            assert resp.status == 200
            assert (await resp.json())["archived"] is True

        async def refused_everywhere() -> bool:
            codes = []
            for url in (harness.gateway_url, second_url):
                async with http.post(f"{url}/v1/ingest", json=trace(), headers=tenant.headers) as resp:
                    codes.append((resp.status, (await resp.json()).get("code")))
                async with http.post(
                    f"{url}/v1/ingest/batch", json={"traces": [trace()]}, headers=tenant.headers
                ) as resp:
                    codes.append((resp.status, (await resp.json()).get("code")))
            return all(c == (403, "error.project.archived") for c in codes)

        await eventually(refused_everywhere, timeout=1.0, interval=0.05)
        async with http.post(f"{harness.gateway_url}/v1/projects/{tenant.project_id}/unarchive", headers=owner) as resp:
            assert resp.status == 200

        async def accepted() -> bool:
            async with http.post(f"{second_url}/v1/ingest", json=trace(), headers=tenant.headers) as resp:
                return resp.status == 201

        await eventually(accepted, timeout=1.0, interval=0.05)
    finally:
        await second_runner.cleanup()


async def test_api_keys_create_list_rotate_revoke(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant):
    owner = harness.session_headers(tenant.id)
    base = harness.gateway_url
    async with http.post(f"{base}/v1/apikeys", json={"name": "ci"}, headers=owner) as resp:
        assert resp.status == 201
        created = await resp.json()
    secret = created["key"]
    assert secret.startswith("tl_") and secret.startswith(created["prefix"])
    assert created["scopes"] == ["ingest", "read"]
    state = harness.gateway_app[config_state]
    await eventually(lambda: _true(state.key_by_hash(hash_api_key(secret)) is not None))
    async with http.post(f"{base}/v1/ingest", json=trace(), headers={"X-Api-Key": secret}) as resp:
        assert resp.status == 201

    async def listed_with_last_use() -> dict[str, Any] | None:
        async with http.get(f"{base}/v1/apikeys", headers=owner) as resp:
            assert resp.status == 200
            keys = {k["id"]: k for k in (await resp.json())["api_keys"]}
        assert all("key" not in k and "key_hash" not in k for k in keys.values())
        key = keys[created["id"]]
        return key if key["last_used_at"] else None

    listed = await eventually(listed_with_last_use, timeout=5)
    assert listed["prefix"] == created["prefix"]

    async with http.post(f"{base}/v1/apikeys/{created['id']}/rotate", headers=owner) as resp:
        assert resp.status == 200
        rotated = await resp.json()
    new_secret = rotated["key"]
    assert new_secret != secret

    async def old_refused_new_accepted() -> bool:
        async with (
            http.post(f"{base}/v1/ingest", json=trace(), headers={"X-Api-Key": secret}) as old,
            http.post(f"{base}/v1/ingest", json=trace(), headers={"X-Api-Key": new_secret}) as new,
        ):
            return old.status == 401 and new.status == 201

    await eventually(old_refused_new_accepted, timeout=1.0, interval=0.05)

    async with http.delete(f"{base}/v1/apikeys/{created['id']}", headers=owner) as resp:
        assert resp.status == 200
        assert (await resp.json())["revoked_at"] is not None

    async def revoked() -> bool:
        async with http.post(f"{base}/v1/ingest", json=trace(), headers={"X-Api-Key": new_secret}) as resp:
            return resp.status == 401 and (await resp.json())["code"] == "unauthorized"

    await eventually(revoked, timeout=1.0, interval=0.05)
    async with http.post(f"{base}/v1/apikeys/{created['id']}/rotate", headers=owner) as resp:
        assert resp.status == 409


async def test_revocation_reaches_another_gateway_replica_within_a_second(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant
):
    """Two gateway apps on one config log: revoke through one, refused by the other within 1 s."""
    _, second_runner, second_url = await harness.start_gateway(harness.gateway_settings)
    try:
        owner = harness.session_headers(tenant.id)
        async with http.post(f"{harness.gateway_url}/v1/apikeys", json={"name": "replicas"}, headers=owner) as resp:
            created = await resp.json()
        key = {"X-Api-Key": created["key"]}

        async def accepted_on_second() -> bool:
            async with http.post(f"{second_url}/v1/ingest", json=trace(), headers=key) as resp:
                return resp.status == 201

        await eventually(accepted_on_second, timeout=5)
        async with http.delete(f"{harness.gateway_url}/v1/apikeys/{created['id']}", headers=owner) as resp:
            assert resp.status == 200

        async def refused_on_second() -> bool:
            async with http.post(f"{second_url}/v1/ingest", json=trace(), headers=key) as resp:
                return resp.status == 401

        await eventually(refused_on_second, timeout=1.0, interval=0.02)
    finally:
        await second_runner.cleanup()


async def test_roles_and_credential_kinds(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant):
    base = harness.gateway_url
    member = harness.session_headers(tenant.id, role="member")
    viewer = harness.session_headers(tenant.id, role="viewer")
    project = await _create_project(http, harness, tenant, "roles")
    async with http.post(f"{base}/v1/projects/{project['id']}/archive", headers=member) as resp:
        assert resp.status == 403
        assert (await resp.json())["code"] == "insufficient_role"
    async with http.post(f"{base}/v1/projects", json={"name": "v"}, headers=viewer) as resp:
        assert resp.status == 403
    async with http.get(f"{base}/v1/projects", headers=viewer) as resp:
        assert resp.status == 200
    async with http.post(f"{base}/v1/apikeys", json={"name": "x", "scopes": ["owner"]}, headers=member) as resp:
        assert resp.status == 403
    # Session-only routes refuse API keys; ingest refuses sessions.
    async with http.get(f"{base}/v1/projects", headers=tenant.headers) as resp:
        assert resp.status == 403
        assert (await resp.json())["code"] == "session_required"
    async with http.post(f"{base}/v1/ingest", json=trace(), headers=member) as resp:
        assert resp.status == 403
        assert (await resp.json())["code"] == "api_key_required"
    # Reads take both.
    async with http.get(f"{base}/v1/traces", headers=viewer) as resp:
        assert resp.status == 200
    async with http.get(f"{base}/v1/projects") as resp:
        assert resp.status == 401


async def test_another_tenants_project_is_forbidden(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant):
    other = await harness.new_tenant()
    async with http.patch(
        f"{harness.gateway_url}/v1/projects/{other.project_id}",
        json={"name": "mine"},
        headers=harness.session_headers(tenant.id),
    ) as resp:
        assert resp.status == 403
    async with http.post(
        f"{harness.gateway_url}/v1/projects/{uuid.uuid4()}/unarchive", headers=harness.session_headers(tenant.id)
    ) as resp:
        assert resp.status == 404
        assert (await resp.json())["code"] == "not_found"


async def test_bad_control_plane_requests(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant):
    base = harness.gateway_url
    owner = harness.session_headers(tenant.id)
    async with http.post(
        f"{base}/v1/projects", data=b"{not json", headers={**owner, "Content-Type": "application/json"}
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["code"] == "malformed_json"
    async with http.post(
        f"{base}/v1/projects", data=b"name=x", headers={**owner, "Content-Type": "text/plain"}
    ) as resp:
        assert resp.status == 415
    async with http.post(f"{base}/v1/projects", json={}, headers=owner) as resp:
        assert resp.status == 422
    async with http.post(f"{base}/v1/projects", json={"name": "x" * 101}, headers=owner) as resp:
        assert resp.status == 400
    big = io.BytesIO(b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}')
    async with http.post(
        f"{base}/v1/projects", data=big, headers={**owner, "Content-Type": "application/json"}
    ) as resp:
        assert resp.status == 413
        body = await resp.json()
        assert body["code"] == "payload_too_large"
        assert body["request_id"]


async def test_control_engine_refuses_requests_without_the_internal_token(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant
):
    url = f"http://127.0.0.1:{harness.control_port}/v1/projects"
    forged = {"X-Trulayer-Tenant-Id": tenant.id, "X-Trulayer-Role": "owner", "X-Trulayer-Actor": "me"}
    forged["X-Trulayer-Auth-Kind"] = "session"
    async with http.get(url, headers=forged) as resp:
        assert resp.status == 401
        assert (await resp.json())["code"] == "unauthorized"
    async with http.get(url, headers={**forged, "X-Trulayer-Internal-Token": "wrong"}) as resp:
        assert resp.status == 401
    async with http.get(url, headers={**forged, "X-Trulayer-Internal-Token": INTERNAL_TOKEN}) as resp:
        assert resp.status == 200
    # The gateway never passes a client's own principal headers on.
    async with http.get(
        f"{harness.gateway_url}/v1/projects",
        headers={**harness.session_headers(tenant.id, role="viewer"), "X-Trulayer-Role": "owner"},
    ) as resp:
        assert resp.status == 200
    async with http.post(
        f"{harness.gateway_url}/v1/projects",
        json={"name": "escalated"},
        headers={**harness.session_headers(tenant.id, role="viewer"), "X-Trulayer-Role": "owner"},
    ) as resp:
        assert resp.status == 403


async def test_control_engine_unreachable_is_503(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant):
    settings = harness.gateway_settings.model_copy(update={"control_engine_url": f"http://127.0.0.1:{free_port()}"})
    _, runner, url = await harness.start_gateway(settings)
    try:
        async with http.get(f"{url}/v1/projects", headers=harness.session_headers(tenant.id)) as resp:
            assert resp.status == 503
            body = await resp.json()
            assert body["code"] == "control_unavailable"
            assert int(resp.headers["Retry-After"]) >= 1
    finally:
        await runner.cleanup()


async def test_changes_are_audited(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant):
    project = await _create_project(http, harness, tenant, "audited")
    async with http.post(
        f"{harness.gateway_url}/v1/projects/{project['id']}/archive", headers=harness.session_headers(tenant.id)
    ) as resp:
        assert resp.status == 200
        request_id = resp.headers["X-Request-Id"]
    rows = await harness.clickhouse.query(
        f"SELECT action, actor, entity_id, request_id FROM {harness.clickhouse.database}.config_audit "
        "WHERE tenant_id = {t:String} AND entity_id = {p:String} ORDER BY at",
        {"t": tenant.id, "p": project["id"]},
    )
    assert [r["action"] for r in rows] == ["project.create", "project.archive"]
    assert {r["actor"] for r in rows} == {"user:tester"}
    assert rows[-1]["request_id"] == request_id


async def test_concurrent_archives_across_control_engine_replicas_leave_one_active(
    http: aiohttp.ClientSession, harness: Harness
):
    """Two control-engine replicas (each behind its own gateway) archive a tenant's last two
    projects at the same moment: the per-tenant lock lets exactly one through."""
    from aiohttp import web

    from control_engine.app import create_app as create_control_engine

    port = free_port()
    control = create_control_engine(harness.control_settings, clickhouse=harness.clickhouse)
    control_runner = web.AppRunner(control, access_log=None)
    await control_runner.setup()
    await web.TCPSite(control_runner, "127.0.0.1", port).start()
    settings = harness.gateway_settings.model_copy(update={"control_engine_url": f"http://127.0.0.1:{port}"})
    _, gateway_runner, second_url = await harness.start_gateway(settings)
    try:
        for _ in range(5):  # several rounds: a lucky interleaving must not hide a race
            tenant = await harness.new_tenant()
            other = await _create_project(http, harness, tenant, "other")
            owner = harness.session_headers(tenant.id)

            async def archive(url: str, project_id: str, headers: dict[str, str] = owner) -> tuple[int, Any]:
                async with http.post(f"{url}/v1/projects/{project_id}/archive", headers=headers) as resp:
                    return resp.status, await resp.json()

            results = await asyncio.gather(
                archive(harness.gateway_url, tenant.project_id), archive(second_url, other["id"])
            )
            statuses = sorted(status for status, _ in results)
            assert statuses == [200, 409], results
            assert any(body.get("code") == "error.project.cannot_archive_last" for _, body in results)
            async with http.get(f"{harness.gateway_url}/v1/projects", headers=owner) as resp:
                projects = (await resp.json())["projects"]
            assert sum(not p["archived"] for p in projects) == 1
    finally:
        await gateway_runner.cleanup()
        await control_runner.cleanup()
