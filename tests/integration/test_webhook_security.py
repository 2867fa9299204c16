"""Webhooks as an attack surface: SSRF (issue 15, finding 2), secrets at rest and URL exposure
(finding 9), and one tenant's alert storm against another's deliveries (finding 8).

The harness allow-lists exactly 127.0.0.1 (its receivers); a receiver on 127.0.0.2 stands for an
internal service: it is reachable from this machine, so only the guard keeps requests away.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiokafka import TopicPartition

from alerter.webhooks import Attempt, WebhookDispatcher
from tests.integration.alerting_support import Receiver, receiver
from tests.integration.conftest import CONFIG_SECRET_KEYS, Harness, Tenant, eventually, free_port
from tests.integration.test_alerter import SECRET, Api
from trulayer_common import topics
from trulayer_common.config.entities import Webhook
from trulayer_common.kafka import create_consumer
from trulayer_common.secret_box import SecretBox, is_sealed, webhook_secret_context

BOX = SecretBox.parse(CONFIG_SECRET_KEYS)


class Internal:
    """An 'internal service' on 127.0.0.2 that must never be reached; answers 500 with a body
    a port scanner would love to read back."""

    def __init__(self) -> None:
        self.hits = 0
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()

        async def handle(_: web.Request) -> web.Response:
            self.hits += 1
            return web.Response(status=500, text="redis-internal.svc:6379 AUTH failed for user admin")

        app.router.add_route("*", "/{tail:.*}", handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.2", self.port).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.2:{self.port}/admin"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def internal() -> AsyncIterator[Internal]:
    service = Internal()
    await service.start()
    yield service
    await service.stop()


async def written_webhook(harness: Harness, tenant: Tenant, url: str) -> Webhook:
    """A webhook record as a registration that passed its check would leave it (a name that
    resolved publicly then), written straight to the config log: only delivery-time checks remain."""
    webhook_id = str(uuid.uuid4())
    hook = Webhook(
        id=webhook_id,
        tenant_id=tenant.id,
        url=url,
        secret=BOX.seal(SECRET, webhook_secret_context(tenant.id, webhook_id)),
        created_at=datetime.now(UTC),
    )
    await harness.writer.append(hook)
    return hook


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.2:8080/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[::1]:8080/hook",
        "http://[::ffff:127.0.0.2]/hook",
        "http://[fd00:ec2::254]/",
        "http://100.64.0.1/",
        "http://0.0.0.0:6379/",
        "gopher://example.com/x",
    ],
)
async def test_registering_a_webhook_to_a_private_destination_is_400_naming_url(
    harness: Harness, http: aiohttp.ClientSession, tenant: Tenant, url: str
) -> None:
    async with http.post(
        f"{harness.gateway_url}/v1/webhooks", json={"url": url, "secret": SECRET}, headers=tenant.headers
    ) as resp:
        body = await resp.json()
        assert resp.status == 400, body
    assert body["code"] == "validation_error" and "'url'" in body["error"]
    assert body["details"][0]["field"] == "url"


async def test_webhook_test_send_refuses_the_destination_and_reports_only_a_category(
    harness: Harness, http: aiohttp.ClientSession, tenant: Tenant, internal: Internal
) -> None:
    hook = await written_webhook(harness, tenant, internal.url)
    api = Api(harness, http, tenant)

    async def known() -> Any:
        listed = await api.call("GET", "/v1/webhooks", expect=200)
        return [w for w in listed["webhooks"] if w["id"] == hook.id]

    await eventually(known)
    result = await api.call("POST", f"/v1/webhooks/{hook.id}/test", expect=200)
    assert result["delivered"] is False
    assert result["outcome"] == "refused_destination" and result["status_class"] is None
    assert internal.hits == 0
    assert "AUTH" not in orjson.dumps(result).decode()


async def test_webhook_test_send_does_not_echo_the_receivers_text(
    harness: Harness, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    async with receiver(SECRET, script=[503]) as r:
        api = Api(harness, http, tenant)
        created = await api.webhook(r.url)
        result = await api.call("POST", f"/v1/webhooks/{created['id']}/test", expect=200)
    assert result == {
        "webhook_id": created["id"],
        "delivered": False,
        "outcome": "http_error",
        "status_class": "5xx",
        "duration_ms": result["duration_ms"],
    }


def dispatcher(harness: Harness, attempts: list[Attempt], **overrides: Any) -> WebhookDispatcher:
    settings = harness.alerter_settings.model_copy(update=overrides)

    async def on_attempt(attempt: Attempt) -> None:
        attempts.append(attempt)

    async def on_delivered(_: dict[str, Any]) -> None:
        return None

    return WebhookDispatcher(settings, on_attempt, on_delivered, BOX)


def event(n: int = 0) -> dict[str, Any]:
    return {"event": "failure.detected", "id": f"ev-{uuid.uuid4().hex}-{n}", "data": {"n": n}}


def hook_to(tenant_id: str, url: str) -> Webhook:
    webhook_id = str(uuid.uuid4())
    return Webhook(
        id=webhook_id,
        tenant_id=tenant_id,
        url=url,
        secret=BOX.seal(SECRET, webhook_secret_context(tenant_id, webhook_id)),
        created_at=datetime.now(UTC),
    )


async def test_alerter_deliveries_to_private_destinations_are_refused_at_connect_time(
    harness: Harness, internal: Internal
) -> None:
    attempts: list[Attempt] = []
    d = dispatcher(harness, attempts)
    await d.start()
    try:
        d.submit("t-ssrf", "failure.detected", event(), [hook_to("t-ssrf", internal.url)])
        await eventually(lambda: _done(attempts, 1))
    finally:
        await d.stop()
    assert [(a.outcome, a.error, a.status_code, a.attempt) for a in attempts] == [
        ("failed", "refused_destination", 0, 1)
    ]
    assert attempts[0].url == f"http://127.0.0.2:{internal.port}/…"  # the path is a credential: masked
    assert internal.hits == 0


async def _done(attempts: list[Attempt], n: int) -> bool:
    return len(attempts) >= n


async def test_one_tenants_storm_does_not_drop_or_delay_another_tenants_delivery(harness: Harness) -> None:
    """Tenant A's 300 deliveries to a slow receiver against tenant B's one: B's is accepted and
    delivered at once; A's excess is dropped from A's own queue, not from everyone's."""
    release = asyncio.Event()
    slow_hits = 0

    async def slow(_: web.Request) -> web.Response:
        nonlocal slow_hits
        slow_hits += 1
        await release.wait()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/slow", slow)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    attempts: list[Attempt] = []
    d = dispatcher(
        harness,
        attempts,
        webhook_max_pending=200,
        webhook_tenant_max_pending=50,
        webhook_concurrency=8,
        webhook_tenant_concurrency=2,
        webhook_timeout_seconds=30.0,
    )
    await d.start()
    try:
        async with receiver(SECRET) as fast:
            storm = hook_to("tenant-a", f"http://127.0.0.1:{port}/slow")
            for n in range(300):
                d.submit("tenant-a", "failure.detected", event(n), [storm])
            started = time.perf_counter()
            d.submit("tenant-b", "failure.detected", event(), [hook_to("tenant-b", fast.url)])

            async def b_delivered() -> bool:
                return len(fast.deliveries) == 1

            await eventually(b_delivered, timeout=10)
            print(f"tenant B delivered {1000 * (time.perf_counter() - started):.1f} ms after A's storm of 300")
            dropped_a = [a for a in attempts if a.tenant_id == "tenant-a" and a.error == "queue_full"]
            assert len(dropped_a) == 300 - 50  # A's own queue holds 50 (submitting does not wait)
            assert not [a for a in attempts if a.tenant_id == "tenant-b" and a.outcome != "delivered"]
            assert slow_hits == 2  # never more than A's two slots
            release.set()
    finally:
        release.set()
        await d.stop(grace_seconds=5)
        await runner.cleanup()


async def test_webhook_secrets_are_sealed_on_the_log_and_absent_from_the_audit(
    harness: Harness, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    api = Api(harness, http, tenant)
    url = "https://hooks.slack.example/services/T000/B000/XXXXXXXXXXXXXXXX"
    secret = f"whsec-{uuid.uuid4().hex}"
    created = await api.call("POST", "/v1/webhooks", {"url": url, "secret": secret}, expect=201)
    assert created["url"] == url  # the creator sees what they sent, once

    consumer = create_consumer(harness.base, group_id=None, client_id="tests-config-peek")
    await consumer.start()
    try:
        tp = TopicPartition(topics.CONFIG, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        raw: list[bytes] = []
        while await consumer.position(tp) < end:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                raw += [r.value for r in records if r.key == f"webhook:{created['id']}".encode() and r.value]
    finally:
        await consumer.stop()
    assert raw and all(secret.encode() not in value for value in raw)
    stored = orjson.loads(raw[-1])["entity"]["secret"]
    assert is_sealed(stored) and BOX.open(stored, webhook_secret_context(tenant.id, created["id"])) == secret

    audit = await harness.clickhouse.query(
        f"SELECT state FROM {harness.clickhouse.database}.config_audit "
        "WHERE tenant_id = {t:String} AND entity_id = {e:String}",
        {"t": tenant.id, "e": created["id"]},
    )
    assert audit and all(secret not in row["state"] and "XXXXXXXX" not in row["state"] for row in audit)
    state = orjson.loads(audit[0]["state"])
    assert "secret" not in state and state["url"] == "https://hooks.slack.example/…"


@pytest.mark.parametrize(
    ("who", "full"),
    [("api_key", False), ("viewer", False), ("member", False), ("owner", True)],
)
async def test_webhook_urls_are_masked_for_all_but_owners_and_no_secret_character_is_shown(
    harness: Harness, http: aiohttp.ClientSession, tenant: Tenant, who: str, full: bool
) -> None:
    url = "https://hooks.slack.example/services/T000/B000/YYYYYYYYYYYYYYYY"
    await Api(harness, http, tenant).call("POST", "/v1/webhooks", {"url": url, "secret": SECRET}, expect=201)
    headers = tenant.headers if who == "api_key" else harness.session_headers(tenant.id, role=who)
    async with http.get(f"{harness.gateway_url}/v1/webhooks", headers=headers) as resp:
        listed = (await resp.json())["webhooks"]
        assert resp.status == 200
    assert [w["url"] for w in listed] == [url if full else "https://hooks.slack.example/…"]
    assert [w["url_masked"] for w in listed] == [not full]
    text = orjson.dumps(listed).decode()
    assert "secret" not in text and SECRET[:4] not in text


async def test_the_alerter_signs_with_the_sealed_secret(harness: Harness, hook: Receiver) -> None:
    attempts: list[Attempt] = []
    d = dispatcher(harness, attempts)
    await d.start()
    try:
        d.submit("t-sign", "failure.detected", event(), [hook_to("t-sign", hook.url)])
        await eventually(lambda: _done(attempts, 1))
    finally:
        await d.stop()
    assert attempts[0].outcome == "delivered" and hook.deliveries[0].signature_ok


@pytest.fixture
async def hook() -> AsyncIterator[Receiver]:
    async with receiver(SECRET) as r:
        yield r


async def test_reseal_seals_plaintext_secrets_and_rotates_keys(harness: Harness) -> None:
    """Secrets written before sealing existed (plaintext on the log) and secrets sealed with a
    retiring key are rewritten sealed with the new first key; the old plaintext then only lives
    until compaction."""
    from pydantic import SecretStr

    from control_engine.cli import reseal
    from trulayer_common.config import ConfigLogReader
    from trulayer_common.secret_box import generate_key_spec

    old, new = generate_key_spec("old"), generate_key_spec("new")
    tenant_id = f"t-{uuid.uuid4().hex[:8]}"
    legacy = hook_to(tenant_id, "https://hooks.example/legacy").model_copy(update={"secret": "plaintext-secret-0123"})
    retiring = hook_to(tenant_id, "https://hooks.example/retiring")
    retiring = retiring.model_copy(
        update={
            "secret": SecretBox.parse(old).seal("retiring-secret-0123", webhook_secret_context(tenant_id, retiring.id))
        }
    )
    await harness.writer.append(legacy)
    await harness.writer.append(retiring)
    settings = harness.control_settings.model_copy(update={"config_secret_keys": SecretStr(f"{new},{old}")})
    resealed, _skipped = await reseal(settings)
    assert resealed >= 2

    reader = ConfigLogReader(harness.base)
    await reader.start()
    try:
        stored = {h.id: h.secret for h in reader.state.webhooks_of(tenant_id)}
    finally:
        await reader.stop()
    only_new = SecretBox.parse(new)
    assert all(secret.startswith("enc:v1:new:") for secret in stored.values())
    assert only_new.open(stored[legacy.id], webhook_secret_context(tenant_id, legacy.id)) == "plaintext-secret-0123"
    assert only_new.open(stored[retiring.id], webhook_secret_context(tenant_id, retiring.id)) == "retiring-secret-0123"
