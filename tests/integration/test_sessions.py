"""Dashboard session JWTs at the gateway: HS256 (local) and RS256 through a JWKS, fail closed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.integration.conftest import KAFKA, SESSION_SECRET, Harness, Tenant, free_port


def _b64(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def _hs256(claims: dict[str, Any], secret: str = SESSION_SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def _claims(tenant_id: str, **overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims = {"sub": "u1", "tenant_id": tenant_id, "role": "owner", "iat": now, "exp": now + timedelta(minutes=5)}
    claims.update(overrides)
    return claims


async def _status(http: aiohttp.ClientSession, url: str, token: str) -> tuple[int, Any]:
    async with http.get(f"{url}/v1/projects", headers={"Authorization": f"Bearer {token}"}) as resp:
        return resp.status, await resp.json()


async def test_hs256_edge_cases(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant):
    url = harness.gateway_url
    assert (await _status(http, url, _hs256(_claims(tenant.id))))[0] == 200
    past = datetime.now(UTC) - timedelta(hours=2)
    expired = _hs256(_claims(tenant.id, iat=past, exp=past + timedelta(minutes=5)))
    status, body = await _status(http, url, expired)
    assert (status, body["code"]) == (401, "unauthorized")
    assert "expired" in body["error"]
    assert (await _status(http, url, _hs256(_claims(tenant.id), secret="not-the-secret-" + "x" * 20)))[0] == 401
    assert (await _status(http, url, _hs256(_claims("no-such-tenant"))))[0] == 401
    assert (await _status(http, url, _hs256(_claims(tenant.id, role="admin"))))[0] == 401
    no_exp = _claims(tenant.id)
    del no_exp["exp"]
    assert (await _status(http, url, _hs256(no_exp)))[0] == 401
    unsigned = jwt.encode(_claims(tenant.id), None, algorithm="none")  # type: ignore[arg-type]
    assert (await _status(http, url, unsigned))[0] == 401
    tampered = _hs256(_claims(tenant.id, role="viewer")).split(".")
    tampered[1] = _hs256(_claims(tenant.id, role="owner")).split(".")[1]
    assert (await _status(http, url, ".".join(tampered)))[0] == 401


async def test_wrong_audience_and_issuer(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant):
    settings = harness.gateway_settings.model_copy(update={"session_audience": "trulayer", "session_issuer": "local"})
    _, runner, url = await harness.start_gateway(settings)
    try:
        good = _hs256(_claims(tenant.id, aud="trulayer", iss="local"))
        assert (await _status(http, url, good))[0] == 200
        status, body = await _status(http, url, _hs256(_claims(tenant.id, aud="someone-else", iss="local")))
        assert status == 401 and "audience" in body["error"]
        assert (await _status(http, url, _hs256(_claims(tenant.id, iss="local"))))[0] == 401
        assert (await _status(http, url, _hs256(_claims(tenant.id, aud="trulayer", iss="evil"))))[0] == 401
    finally:
        await runner.cleanup()


class _Issuer:
    """A JWKS endpoint whose keys the test controls (and can take down)."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.up = True
        self.fetches = 0

    def add_key(self, kid: str) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def token(self, kid: str, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.keys[kid], algorithm="RS256", headers={"kid": kid})

    async def jwks(self, _: web.Request) -> web.Response:
        self.fetches += 1
        if not self.up:
            return web.Response(status=503)
        keys = []
        for kid, key in self.keys.items():
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
        return web.json_response({"keys": keys})


@pytest.fixture
async def issuer() -> AsyncIterator[tuple[_Issuer, str]]:
    issuer = _Issuer()
    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", issuer.jwks)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield issuer, f"http://127.0.0.1:{port}/.well-known/jwks.json"
    await runner.cleanup()


async def test_rs256_through_jwks_with_key_rotation_and_outage(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant, issuer: tuple[_Issuer, str]
):
    idp, jwks_url = issuer
    idp.add_key("k1")
    settings = harness.gateway_settings.model_copy(
        update={"session_jwks_url": jwks_url, "session_jwks_min_refresh_seconds": 0.0}
    )
    _, runner, url = await harness.start_gateway(settings)
    try:
        assert (await _status(http, url, idp.token("k1", _claims(tenant.id))))[0] == 200
        assert (await _status(http, url, idp.token("k1", _claims(tenant.id))))[0] == 200
        assert idp.fetches == 1  # cached
        # The issuer rotates to a new key: an unknown kid triggers a refresh.
        idp.add_key("k2")
        assert (await _status(http, url, idp.token("k2", _claims(tenant.id))))[0] == 200
        assert idp.fetches == 2
        # A key the issuer never published stays refused.
        stranger = _Issuer()
        stranger.add_key("k9")
        assert (await _status(http, url, stranger.token("k9", _claims(tenant.id))))[0] == 401
        # Signed by another key under a known kid: refused.
        stranger.add_key("k1")
        assert (await _status(http, url, stranger.token("k1", _claims(tenant.id))))[0] == 401
        # Algorithm confusion: an HS256 token "signed" with the issuer's public key is refused.
        public_pem = idp.keys["k1"].public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        claims = {**_claims(tenant.id), "iat": int(datetime.now(UTC).timestamp())}
        claims["exp"] = claims["iat"] + 300
        signing_input = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode()) + b"."
        signing_input += _b64(json.dumps(claims).encode())
        signature = _b64(hmac.new(public_pem, signing_input, hashlib.sha256).digest())
        assert (await _status(http, url, (signing_input + b"." + signature).decode()))[0] == 401
    finally:
        await runner.cleanup()


async def test_issuer_unreachable_without_cached_keys_fails_closed(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant, issuer: tuple[_Issuer, str]
):
    idp, jwks_url = issuer
    idp.add_key("k1")
    idp.up = False
    settings = harness.gateway_settings.model_copy(update={"session_jwks_url": jwks_url})
    _, runner, url = await harness.start_gateway(settings)
    try:
        status, body = await _status(http, url, idp.token("k1", _claims(tenant.id)))
        assert status == 503
        assert body["code"] == "auth_unavailable"
    finally:
        await runner.cleanup()
    # No issuer at all (connection refused): the same.
    settings = harness.gateway_settings.model_copy(
        update={"session_jwks_url": f"http://127.0.0.1:{free_port()}/jwks", "session_hs256_secret": None}
    )
    _, runner, url = await harness.start_gateway(settings)
    try:
        assert (await _status(http, url, idp.token("k1", _claims(tenant.id))))[0] == 503
        # HS256 is not accepted when no secret is configured.
        assert (await _status(http, url, _hs256(_claims(tenant.id))))[0] == 401
    finally:
        await runner.cleanup()


def test_cli_prints_a_token_the_gateway_accepts(harness: Harness, tenant: Tenant):
    env = {"KAFKA_BOOTSTRAP_SERVERS": KAFKA, "SESSION_HS256_SECRET": SESSION_SECRET, "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "control_engine.cli", "sessions", "token", "--tenant", tenant.id, "--role", "member"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    claims = jwt.decode(out.stdout.strip(), SESSION_SECRET, algorithms=["HS256"])
    assert claims["tenant_id"] == tenant.id
    assert claims["role"] == "member"
    missing = subprocess.run(
        [sys.executable, "-m", "control_engine.cli", "sessions", "token", "--tenant", tenant.id],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        check=False,
        timeout=60,
    )
    assert missing.returncode == 1
    assert "SESSION_HS256_SECRET" in missing.stderr
