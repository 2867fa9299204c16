"""The SSRF guard's decisions, without the network: which addresses are refused, the operator's
allow-list, and the resolver refusing a name whole when any of its addresses is forbidden."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from trulayer_common.outbound import (
    DestinationRefusedError,
    GuardedResolver,
    OutboundPolicy,
    OutboundResult,
    check_destination,
    forbidden_reason,
)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.9.9.9",
        "0.0.0.0",  # noqa: S104
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "169.254.1.1",
        "100.64.0.1",  # CGNAT
        "224.0.0.1",
        "239.255.255.250",
        "255.255.255.255",
        "198.18.0.1",
        "192.0.2.1",
        "240.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd00:ec2::254",
        "ff02::1",
        "fec0::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:169.254.169.254",
        "::127.0.0.1",  # IPv4-compatible
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "64:ff9b:1::1",
        "2001:db8::1",
    ],
)
def test_non_public_addresses_are_forbidden(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "2002:808:808::"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None


def test_allow_list_opens_networks_and_hosts_but_never_metadata() -> None:
    policy = OutboundPolicy.parse(" 10.0.0.0/8, 127.0.0.1 ,hooks.corp.example, .internal.example,169.254.0.0/16")
    assert policy.refusal(ipaddress.ip_address("10.20.30.40")) is None
    assert policy.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert policy.refusal(ipaddress.ip_address("127.0.0.2")) is not None
    assert policy.refusal(ipaddress.ip_address("192.168.0.1"), "hooks.corp.example") is None
    assert policy.refusal(ipaddress.ip_address("192.168.0.1"), "a.b.internal.example") is None
    assert policy.refusal(ipaddress.ip_address("192.168.0.1"), "evilinternal.example") is not None
    assert policy.refusal(ipaddress.ip_address("169.254.1.1")) is None
    assert policy.refusal(ipaddress.ip_address("169.254.169.254")) == "cloud metadata address"
    assert policy.refusal(ipaddress.ip_address("169.254.169.254"), "hooks.corp.example") == "cloud metadata address"
    with pytest.raises(ValueError, match="not_a host"):
        OutboundPolicy.parse("10.0.0.0/8, not_a host")


class ScriptedResolver(AbstractResolver):
    """Answers each resolution with the next scripted list of addresses (DNS rebinding)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = self.answers.pop(0)
        return [
            ResolveResult(
                hostname=host,
                host=a,
                port=port,
                family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                proto=0,
                flags=0,
            )
            for a in addresses
        ]

    async def close(self) -> None:
        return None


async def test_a_name_is_refused_whole_when_any_address_is_forbidden() -> None:
    guard = GuardedResolver(OutboundPolicy(), ScriptedResolver(["93.184.216.34"], ["93.184.216.34", "10.0.0.7"]))
    assert [a["host"] for a in await guard.resolve("hooks.example", 443)] == ["93.184.216.34"]
    with pytest.raises(DestinationRefusedError, match="private"):
        await guard.resolve("hooks.example", 443)


async def test_registration_check_refuses_literals_names_and_schemes() -> None:
    policy = OutboundPolicy()
    assert await check_destination("ftp://example.com/x", policy) == "only http and https URLs are allowed"
    assert "loopback" in (await check_destination("http://127.0.0.1:8080/h", policy) or "")
    assert "metadata" in (await check_destination("http://169.254.169.254/latest/meta-data", policy) or "")
    assert "loopback" in (await check_destination("http://[::ffff:127.0.0.1]/h", policy) or "")
    rebinding = ScriptedResolver(["127.0.0.1"])
    assert "loopback" in (await check_destination("https://rebind.example/h", policy, rebinding) or "")
    public = ScriptedResolver(["93.184.216.34"])
    assert await check_destination("https://hooks.example/h", policy, public) is None


def test_results_are_categories() -> None:
    assert OutboundResult("http_error", 503).retryable
    assert OutboundResult("http_error", 503).describe() == "http_error 5xx"
    assert not OutboundResult("http_error", 404).retryable
    assert not OutboundResult("refused_destination").retryable
    assert OutboundResult("timeout").retryable and OutboundResult("connection_failed").retryable
    assert OutboundResult("delivered", 204).delivered and OutboundResult("delivered", 204).status_class == "2xx"
