"""The SSRF guard with real sockets: local receivers stand in for internal services.

A receiver on 127.0.0.1 is what an attacker would aim at (a metadata endpoint, an admin port):
it must never see a request unless the operator allow-listed it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from tests.integration.conftest import free_port
from tests.unit.common.test_outbound import ScriptedResolver
from trulayer_common.outbound import OutboundClient, OutboundPolicy, check_destination

LOOPBACK = OutboundPolicy.parse("127.0.0.1/32")


@dataclass
class Target:
    """A local HTTP server counting what reaches it."""

    port: int = 0
    hits: list[str] = field(default_factory=list)
    streamed: int = 0
    stream_total: int = 256 * 1024 * 1024
    stream_aborted: bool = False

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    async def hook(self, request: web.Request) -> web.Response:
        self.hits.append(request.path)
        await request.read()
        return web.Response(status=204)

    async def redirect(self, request: web.Request) -> web.Response:
        self.hits.append(request.path)
        raise web.HTTPFound(self.url("/internal-admin"))

    async def slow(self, request: web.Request) -> web.Response:
        self.hits.append(request.path)
        await asyncio.sleep(5)
        return web.Response(status=200)

    async def huge(self, request: web.Request) -> web.StreamResponse:
        """200 with a 256 MiB body, written as fast as the client takes it."""
        self.hits.append(request.path)
        response = web.StreamResponse(status=200)
        response.content_length = self.stream_total
        await response.prepare(request)
        chunk = b"x" * 65536
        try:
            while self.streamed < self.stream_total:
                await response.write(chunk)
                self.streamed += len(chunk)
        except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
            self.stream_aborted = True
            raise
        return response


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    t = Target()
    app = web.Application()
    app.router.add_post("/hook", t.hook)
    app.router.add_post("/redirect", t.redirect)
    app.router.add_post("/internal-admin", t.hook)
    app.router.add_post("/slow", t.slow)
    app.router.add_post("/huge", t.huge)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    t.port = free_port()
    await web.TCPSite(runner, "127.0.0.1", t.port).start()
    yield t
    await runner.cleanup()


async def post(policy: OutboundPolicy, url: str, **kw: object) -> tuple[str, int, int]:
    async with OutboundClient(policy, timeout_seconds=2.0, **kw) as client:  # type: ignore[arg-type]
        result = await client.post(url, b"{}", {"Content-Type": "application/json"})
    return result.describe(), result.status, result.reply_bytes


async def test_a_loopback_receiver_is_refused_unless_allow_listed(target: Target) -> None:
    for url in (
        target.url(),
        target.url(host="localhost"),
        target.url(host="127.0.0.2"),
        f"http://[::ffff:127.0.0.1]:{target.port}/hook",
        f"http://[::1]:{target.port}/hook",
        f"http://2130706433:{target.port}/hook",
        f"http://0x7f.1:{target.port}/hook",
    ):
        outcome, status, _ = await post(OutboundPolicy(), url)
        assert (outcome, status) in (("refused_destination", 0), ("invalid_url", 0)), url
    assert target.hits == []
    assert await post(LOOPBACK, target.url()) == ("delivered", 204, 0)
    assert target.hits == ["/hook"]
    # The allow-list names 127.0.0.1 only: the rest of 127/8 stays closed.
    assert (await post(LOOPBACK, target.url(host="127.0.0.2")))[0] == "refused_destination"


async def test_dns_rebinding_is_caught_at_connect_time(target: Target) -> None:
    """The name answered a public address when the webhook was registered, loopback when it is
    delivered: the delivery is refused and nothing reaches the receiver."""
    rebinding = ScriptedResolver(["93.184.216.34"], ["127.0.0.1"])
    url = f"http://rebind.example:{target.port}/hook"
    assert await check_destination(url, OutboundPolicy(), rebinding) is None
    assert await post(OutboundPolicy(), url, resolver=rebinding) == ("refused_destination", 0, 0)
    # One answer mixing a public and a private address is refused whole.
    mixed = ScriptedResolver(["93.184.216.34", "127.0.0.1"])
    assert (await post(OutboundPolicy(), url, resolver=mixed))[0] == "refused_destination"
    assert target.hits == []


async def test_a_huge_reply_is_read_only_up_to_the_cap(target: Target) -> None:
    outcome, status, read = await post(LOOPBACK, target.url("/huge"), max_reply_bytes=4096)
    assert (outcome, status) == ("delivered", 200)
    assert read == 4096

    async def aborted() -> bool:
        return target.stream_aborted

    for _ in range(50):
        if await aborted():
            break
        await asyncio.sleep(0.1)
    print(f"receiver wrote {target.streamed / 1e6:.1f} MB of {target.stream_total / 1e6:.0f} MB before the close")
    assert target.stream_aborted and target.streamed < target.stream_total


async def test_redirects_are_not_followed_and_timeouts_and_failures_are_categories(target: Target) -> None:
    assert (await post(LOOPBACK, target.url("/redirect")))[:2] == ("http_error 3xx", 302)
    assert target.hits == ["/redirect"]
    assert (await post(LOOPBACK, target.url("/slow")))[0] == "timeout"
    closed = free_port()
    assert (await post(LOOPBACK, f"http://127.0.0.1:{closed}/hook"))[0] == "connection_failed"
    assert (await post(LOOPBACK, f"ftp://127.0.0.1:{target.port}/hook"))[0] == "invalid_url"
