"""Local session tokens: HS256 JWTs signed with ``SESSION_HS256_SECRET`` (``trulayer sessions token``).

For local installs and tests, where no OIDC issuer exists: the gateway verifies these with the
same secret, issuer and audience settings. Production dashboards use the issuer's RS256 tokens.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import jwt

from control_engine.settings import ControlEngineSettings
from trulayer_common.access import Role


def mint_session_token(
    settings: ControlEngineSettings,
    tenant_id: str,
    role: Role,
    subject: str = "local-admin",
    ttl: timedelta = timedelta(hours=1),
    now: datetime | None = None,
) -> str:
    """A signed token for ``tenant_id`` with ``role``; raises ``ValueError`` without a secret."""
    if settings.session_hs256_secret is None:
        raise ValueError("SESSION_HS256_SECRET is not set: local session tokens need it")
    issued = now or datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": subject,
        settings.session_tenant_claim: tenant_id,
        settings.session_role_claim: role,
        "iat": issued,
        "exp": issued + ttl,
        "jti": uuid.uuid4().hex,
    }
    if settings.session_issuer:
        claims["iss"] = settings.session_issuer
    if settings.session_audience:
        claims["aud"] = settings.session_audience
    return jwt.encode(claims, settings.session_hs256_secret.get_secret_value(), algorithm="HS256")
