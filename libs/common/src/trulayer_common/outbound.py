"""Outbound HTTP to URLs a tenant chose (webhook deliveries, webhook tests): the SSRF guard.

Every tenant-controlled outbound call goes through :class:`OutboundClient`. Its guarantees:

* **Schemes**: ``http`` and ``https`` only, with a host.
* **Destinations**: the connection goes only to an address this module vetted, at connect
  time. Names are resolved by :class:`GuardedResolver`, which checks *every* address of the
  answer and refuses the name whole if one is forbidden (so a DNS answer mixing a public and a
  private address cannot reach the private one, and a name re-bound to a private address after
  registration is refused at delivery). IP literals skip resolution, so a socket factory checks
  the exact address of every socket before it connects. Forbidden: every address that is not
  global unicast — loopback, private (RFC 1918, ULA), link-local, multicast, unspecified,
  reserved, CGNAT (100.64/10), benchmarking, documentation, broadcast — and the IPv4-mapped,
  IPv4-compatible, 6to4, Teredo and NAT64 forms of those. The cloud metadata addresses
  (169.254.169.254, fd00:ec2::254) are refused always.
* **Operator allow-list** (:class:`OutboundPolicy`, setting ``EGRESS_ALLOWLIST``): CIDRs and
  host names (``.corp.example`` matches its subdomains) of on-premise receivers that may be
  private. It never opens the metadata addresses.
* **Bounded**: no redirects, a total timeout, and at most ``max_reply_bytes`` of a reply read
  (the connection is closed after that: a 400 MB answer costs a few KiB).
* **Categories, not upstream text**: :class:`OutboundResult` says ``delivered``,
  ``http_error`` (with the status), ``timeout``, ``refused_destination``,
  ``connection_failed`` or ``invalid_url``; no exception text or reply body leaves this module,
  so the outcome cannot be used to read internal services or to scan ports with error messages.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from trulayer_common.logging import get_logger

log = get_logger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Outcome = Literal["delivered", "http_error", "timeout", "refused_destination", "connection_failed", "invalid_url"]

METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
DEFAULT_MAX_REPLY_BYTES = 4096


class DestinationRefusedError(OSError):
    """The destination is not allowed (an ``OSError`` so the HTTP client treats it as a
    failure to connect, before any packet is sent)."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"destination {host!r} refused: {reason}")
        self.host = host
        self.reason = reason


class InvalidDestinationError(ValueError):
    """Not an ``http(s)://host`` URL."""


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries and routes to (mapped, compatible, 6to4, Teredo, NAT64)."""
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` is no destination for a tenant's request (``None``: a global unicast address)."""
    if ip in METADATA_ADDRESSES:
        return "cloud metadata address"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "scoped IPv6 address"
        for inner in _embedded_ipv4(ip):
            reason = forbidden_reason(inner)
            if reason is not None:
                return f"{reason} (embedded in {ip})"
        if ip in _NAT64_LOCAL or ip.is_site_local:
            return "private address"
    if ip.is_unspecified:
        return "unspecified address"
    if ip.is_loopback:
        return "loopback address"
    if ip.is_link_local:
        return "link-local address"
    if ip.is_multicast:
        return "multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "shared (CGNAT) address"
    if ip.is_private:
        return "private address"
    if ip.is_reserved or not ip.is_global:
        return "reserved address"
    return None


def _parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class OutboundPolicy:
    """Which destinations are allowed besides global unicast ones: the operator's allow-list."""

    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, allowlist: str) -> OutboundPolicy:
        """``"10.0.0.0/8, 192.168.1.20, hooks.corp.example, .internal.example"`` → a policy.

        Raises ``ValueError`` naming an entry that is neither a CIDR/address nor a host name.
        """
        networks = []
        hosts = set()
        for raw in allowlist.split(","):
            entry = raw.strip().lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            name = entry.removeprefix(".")
            if not name or any(not part or not part.replace("-", "").isalnum() for part in name.split(".")):
                raise ValueError(f"egress allow-list entry {raw.strip()!r} is neither a CIDR nor a host name")
            hosts.add(entry)
        return cls(tuple(networks), frozenset(hosts))

    def host_allowed(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return host in self.hosts or any(h.startswith(".") and host.endswith(h) for h in self.hosts)

    def refusal(self, ip: IPAddress, host: str | None = None) -> str | None:
        """Why a connection to ``ip`` (for ``host``, when known) is refused; ``None`` when allowed."""
        if ip in METADATA_ADDRESSES:
            return "cloud metadata address"
        if any(ip.version == net.version and ip in net for net in self.networks):
            return None
        if host is not None and self.host_allowed(host):
            return None
        return forbidden_reason(ip)


def parse_destination(url: str) -> URL:
    """The URL if it is ``http(s)://host[:port]/...``; raises :class:`InvalidDestinationError`."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        raise InvalidDestinationError("not a URL") from None
    if parsed.scheme not in ("http", "https"):
        raise InvalidDestinationError("only http and https URLs are allowed")
    if not parsed.host:
        raise InvalidDestinationError("the URL has no host")
    return parsed


class GuardedResolver(AbstractResolver):
    """Resolves with ``inner`` and refuses the whole name when any address of the answer is
    forbidden by the policy. aiohttp connects only to the addresses returned here."""

    def __init__(self, policy: OutboundPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or DefaultResolver()
        # Addresses allowed only because their *name* is allow-listed: the socket factory,
        # which sees addresses but not names, must let exactly these through.
        self.vetted_by_name: set[str] = set()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        for answer in answers:
            ip = _parse_ip(answer["host"])
            reason = "unparseable address" if ip is None else self._policy.refusal(ip, host)
            if reason is not None:
                raise DestinationRefusedError(host, reason)
        if self._policy.host_allowed(host):
            self.vetted_by_name.update(a["host"] for a in answers)
        return answers

    async def close(self) -> None:
        await self._inner.close()


@dataclass(frozen=True)
class OutboundResult:
    """The category of one request's outcome; never the upstream's text."""

    outcome: Outcome
    status: int = 0  # the HTTP status when there was an answer
    duration_ms: float = 0.0
    reply_bytes: int = 0  # bytes of the reply body read (at most the cap)

    @property
    def delivered(self) -> bool:
        return self.outcome == "delivered"

    @property
    def status_class(self) -> str | None:
        """``"2xx"`` … ``"5xx"`` when the destination answered."""
        return f"{self.status // 100}xx" if self.status else None

    @property
    def retryable(self) -> bool:
        """Worth another attempt later: timeouts, connection failures and 5xx answers."""
        return self.outcome in ("timeout", "connection_failed") or (self.outcome == "http_error" and self.status >= 500)

    def describe(self) -> str:
        """Short text for logs and delivery records: the category (and status class)."""
        return f"{self.outcome} {self.status_class}" if self.outcome == "http_error" else self.outcome


def _refused(exc: BaseException) -> DestinationRefusedError | None:
    seen: BaseException | None = exc
    for _ in range(6):  # the refusal travels wrapped: ClientConnectorError(os_error=...) / __cause__
        if seen is None:
            return None
        if isinstance(seen, DestinationRefusedError):
            return seen
        os_error = getattr(seen, "os_error", None)
        seen = os_error if isinstance(os_error, BaseException) else (seen.__cause__ or seen.__context__)
    return None


class OutboundClient:
    """A pooled HTTP client for tenant-chosen URLs; open with ``async with`` (or start/close)."""

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        timeout_seconds: float,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
        user_agent: str = "trulayer/1",
        resolver: AbstractResolver | None = None,
    ) -> None:
        self.policy = policy
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._max_reply = max_reply_bytes
        self._user_agent = user_agent
        self._inner_resolver = resolver
        self._resolver: GuardedResolver | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> OutboundClient:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def start(self) -> None:
        self._resolver = GuardedResolver(self.policy, self._inner_resolver)
        connector = aiohttp.TCPConnector(
            resolver=self._resolver,
            use_dns_cache=False,  # every request decides on a fresh, vetted answer
            socket_factory=self._socket,
            limit=256,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            headers={"User-Agent": self._user_agent},
            trust_env=False,  # never through an environment proxy that could reach inside
            auto_decompress=False,  # the cap counts bytes on the wire
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _socket(self, addr_info: Any) -> socket.socket:
        """The last check, on the exact address a socket is about to connect to."""
        family, type_, proto, _, sockaddr = addr_info
        address = str(sockaddr[0])
        ip = _parse_ip(address)
        vetted = self._resolver is not None and address in self._resolver.vetted_by_name
        reason = "unparseable address" if ip is None else (None if vetted else self.policy.refusal(ip))
        if reason is not None:
            raise DestinationRefusedError(address, reason)
        return socket.socket(family, type_, proto)

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> OutboundResult:
        """POST ``body`` to ``url`` under the guarantees above; never raises for the destination's
        behaviour (every failure is a category)."""
        if self._session is None:
            raise RuntimeError("OutboundClient is not started")
        clock = time.perf_counter()

        def result(outcome: Outcome, status: int = 0, read: int = 0) -> OutboundResult:
            return OutboundResult(outcome, status, (time.perf_counter() - clock) * 1000, read)

        try:
            target = parse_destination(url)
        except InvalidDestinationError:
            return result("invalid_url")
        literal = _parse_ip(target.host or "")
        if literal is not None and self.policy.refusal(literal) is not None:
            return result("refused_destination")
        try:
            async with self._session.post(target, data=body, headers=headers, allow_redirects=False) as resp:
                read = await self._read_capped(resp)
                resp.close()  # whatever is left unread is dropped with the connection
                return result("delivered" if 200 <= resp.status < 300 else "http_error", resp.status, read)
        except TimeoutError:
            return result("timeout")
        except (aiohttp.ClientError, OSError) as exc:
            refused = _refused(exc)
            if refused is not None:
                log.warning("outbound_destination_refused", host=refused.host, reason=refused.reason)
                return result("refused_destination")
            if isinstance(exc, aiohttp.InvalidURL):
                return result("invalid_url")
            return result("connection_failed")

    async def _read_capped(self, resp: aiohttp.ClientResponse) -> int:
        read = 0
        while read < self._max_reply:
            chunk = await resp.content.read(self._max_reply - read)
            if not chunk:
                break
            read += len(chunk)
        return read


async def check_destination(
    url: str, policy: OutboundPolicy, resolver: AbstractResolver | None = None, timeout_seconds: float = 3.0
) -> str | None:
    """Registration-time check of ``url``: why it is refused, or ``None``.

    Refuses non-http(s) URLs, forbidden IP literals and names that resolve (now) to a forbidden
    address. A name that does not resolve now is not refused here: every delivery checks again
    at connect time, which is what actually protects (DNS answers change).
    """
    try:
        target = parse_destination(url)
    except InvalidDestinationError as exc:
        return str(exc)
    host = target.host or ""
    literal = _parse_ip(host)
    if literal is not None:
        reason = policy.refusal(literal)
        return None if reason is None else f"destination not allowed ({reason})"
    guard = GuardedResolver(policy, resolver)
    try:
        async with asyncio.timeout(timeout_seconds):
            await guard.resolve(host, target.port or 0, socket.AF_UNSPEC)
    except DestinationRefusedError as exc:
        return f"destination not allowed ({exc.reason})"
    except (OSError, TimeoutError):
        return None
    finally:
        if resolver is None:
            await guard.close()
    return None


def masked_url(url: str) -> str:
    """``https://hooks.slack.com/…``: scheme and host only. For Slack-style hooks the path *is*
    the credential, so only the webhook's owners see the full URL (and logs never do)."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        return "…"
    if not parsed.scheme or not parsed.host:
        return "…"
    port = f":{parsed.explicit_port}" if parsed.explicit_port else ""
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    return f"{parsed.scheme}://{host}{port}/…"
