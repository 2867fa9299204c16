"""Dashboard sessions: ``Authorization: Bearer <JWT>`` verified locally, never by a call per request.

* RS256 tokens are checked against the issuer's JWKS (``SESSION_JWKS_URL``), cached for
  ``SESSION_JWKS_CACHE_SECONDS`` and refetched when a token names an unknown ``kid`` (at most
  every ``SESSION_JWKS_MIN_REFRESH_SECONDS``, so random kids cannot hammer the issuer).
* HS256 tokens are checked with ``SESSION_HS256_SECRET`` (local use; ``trulayer sessions token``).
* The algorithm decides the key, and each algorithm is accepted only with its own key source,
  so an RS256 public key can never be used as an HS256 secret.

Fails closed: a bad, expired or wrong-audience token is 401; an issuer that cannot be reached
while no cached key matches is 503 — never access.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, cast

import aiohttp
import jwt
from prometheus_client import Counter

from gateway.settings import GatewaySettings
from trulayer_common.access import ROLES, Role
from trulayer_common.errors import ApiError, unauthorized
from trulayer_common.logging import get_logger

log = get_logger(__name__)
JWKS_FETCHES = Counter("trulayer_gateway_jwks_fetches_total", "JWKS fetches from the session issuer", ["outcome"])


@dataclass(frozen=True, slots=True)
class SessionClaims:
    tenant_id: str
    role: Role
    subject: str


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and not token.startswith("tl_")


class JwksCache:
    """The issuer's signing keys by ``kid``, fetched lazily and refreshed on an unknown kid."""

    def __init__(self, url: str, http: aiohttp.ClientSession, ttl_seconds: float, min_refresh_seconds: float) -> None:
        self.url = url
        self._http = http
        self._ttl = ttl_seconds
        self._min_refresh = min_refresh_seconds
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> jwt.PyJWK:
        """The key for ``kid`` (or the only key when the token names none).

        Raises 401 when the issuer does not know the kid, 503 when it cannot be asked and no
        cached key matches.
        """
        key = self._lookup(kid)
        stale = time.monotonic() - self._fetched_at > self._ttl
        if key is not None and not stale:
            return key
        async with self._lock:
            key = self._lookup(kid)
            if key is not None and time.monotonic() - self._fetched_at <= self._ttl:
                return key  # another request refreshed while this one waited
            # Rate-limited even with no keys: a down issuer must not be hammered, nor every
            # request wait for its timeout.
            if time.monotonic() - self._attempted_at >= self._min_refresh:
                await self._refresh()
        key = self._lookup(kid)
        if key is not None:
            return key
        if not self._keys:
            raise ApiError(
                503,
                "Session verification unavailable: issuer keys cannot be fetched",
                "auth_unavailable",
                headers={"Retry-After": "5"},
            )
        raise unauthorized("Invalid session token: unknown signing key")

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        self._attempted_at = time.monotonic()
        try:
            async with self._http.get(self.url, timeout=aiohttp.ClientTimeout(total=5)) as response:
                response.raise_for_status()
                document = await response.json(content_type=None)
            key_set = jwt.PyJWKSet.from_dict(document)
        except (aiohttp.ClientError, TimeoutError, ValueError, jwt.PyJWKSetError) as exc:
            # Keep serving with the keys already known (if any): a flaky issuer must not log
            # everyone out, and an unknown kid still gets no access.
            JWKS_FETCHES.labels("error").inc()
            log.warning("jwks_fetch_failed", url=self.url, error=repr(exc), cached_keys=len(self._keys))
            return
        self._keys = {k.key_id: k for k in key_set.keys if k.key_id}
        if not self._keys and len(key_set.keys) == 1:
            self._keys = {"": key_set.keys[0]}
        self._fetched_at = time.monotonic()
        JWKS_FETCHES.labels("ok").inc()
        log.info("jwks_fetched", url=self.url, keys=len(self._keys))


class SessionVerifier:
    """Turns a JWT into :class:`SessionClaims` or raises the documented 401/503."""

    def __init__(self, settings: GatewaySettings, jwks: JwksCache | None) -> None:
        self._secret = settings.session_hs256_secret.get_secret_value() if settings.session_hs256_secret else None
        self._jwks = jwks
        self._issuer = settings.session_issuer
        self._audience = settings.session_audience
        self._tenant_claim = settings.session_tenant_claim
        self._role_claim = settings.session_role_claim
        self._leeway = settings.session_leeway_seconds

    @property
    def enabled(self) -> bool:
        return self._secret is not None or self._jwks is not None

    async def verify(self, token: str) -> SessionClaims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise unauthorized("Invalid session token") from None
        algorithm = header.get("alg")
        key: Any
        if algorithm == "HS256" and self._secret is not None:
            key = self._secret
        elif algorithm == "RS256" and self._jwks is not None:
            kid = header.get("kid")
            key = (await self._jwks.key(kid if isinstance(kid, str) else None)).key
        else:
            raise unauthorized("Invalid session token: unsupported signing algorithm")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "sub"], "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("Session token expired") from None
        except jwt.InvalidAudienceError:
            raise unauthorized("Invalid session token: wrong audience") from None
        except jwt.InvalidIssuerError:
            raise unauthorized("Invalid session token: wrong issuer") from None
        except jwt.InvalidTokenError:
            raise unauthorized("Invalid session token") from None
        tenant_id = claims.get(self._tenant_claim)
        role = claims.get(self._role_claim)
        if not isinstance(tenant_id, str) or not tenant_id:
            raise unauthorized(f"Invalid session token: no '{self._tenant_claim}' claim")
        if role not in ROLES:
            raise unauthorized(f"Invalid session token: '{self._role_claim}' must be one of {', '.join(ROLES)}")
        return SessionClaims(tenant_id=tenant_id, role=cast(Role, role), subject=str(claims["sub"]))
