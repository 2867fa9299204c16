"""The principal the gateway forwards to the control-engine: one type, one write/read pair.

The gateway authenticates every public request, then forwards control-plane routes with the
caller in ``X-Trulayer-*`` headers and the shared ``INTERNAL_TOKEN``. The control-engine trusts
these headers only on a request carrying the token; the gateway never copies a client's own
``X-Trulayer-*`` headers (it builds the forwarded headers from scratch).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from trulayer_common.access import AUTH_KINDS, ROLES, SCOPES, AuthKind, Role, role_at_least
from trulayer_common.errors import forbidden

INTERNAL_TOKEN_HEADER = "X-Trulayer-Internal-Token"  # noqa: S105 - a header name, not a secret
TENANT_ID = "X-Trulayer-Tenant-Id"
ROLE = "X-Trulayer-Role"
ACTOR = "X-Trulayer-Actor"
AUTH_KIND = "X-Trulayer-Auth-Kind"
API_KEY_ID = "X-Trulayer-Api-Key-Id"
SCOPES_HEADER = "X-Trulayer-Scopes"


class InvalidPrincipalError(ValueError):
    """Principal headers are present but malformed."""


@dataclass(frozen=True, slots=True)
class ForwardedPrincipal:
    """The authenticated caller as the control-engine sees it."""

    tenant_id: str
    kind: AuthKind
    role: Role
    actor: str
    api_key_id: str | None = None
    scopes: frozenset[str] = frozenset()

    def require_role(self, minimum: Role) -> None:
        """403 unless the caller's role is at least ``minimum`` (owner > member > viewer)."""
        if not role_at_least(self.role, minimum):
            raise forbidden(f"This action needs the '{minimum}' role", "insufficient_role")

    def to_headers(self) -> dict[str, str]:
        headers = {
            TENANT_ID: self.tenant_id,
            ROLE: self.role,
            ACTOR: self.actor,
            AUTH_KIND: self.kind,
            SCOPES_HEADER: ",".join(sorted(self.scopes)),
        }
        if self.api_key_id is not None:
            headers[API_KEY_ID] = self.api_key_id
        return headers

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> ForwardedPrincipal | None:
        """The principal in ``headers``; ``None`` when there is none (an unauthenticated
        forward, e.g. GuardLayer's key creation). Raises :class:`InvalidPrincipalError`."""
        tenant_id = headers.get(TENANT_ID)
        if not tenant_id:
            return None
        role = headers.get(ROLE, "")
        kind = headers.get(AUTH_KIND, "")
        actor = headers.get(ACTOR, "")
        scopes = frozenset(s for s in headers.get(SCOPES_HEADER, "").split(",") if s)
        if role not in ROLES or kind not in AUTH_KINDS or not actor or not scopes <= set(SCOPES):
            raise InvalidPrincipalError("malformed forwarded principal")
        return cls(
            tenant_id=tenant_id,
            kind=kind,
            role=role,
            actor=actor,
            api_key_id=headers.get(API_KEY_ID) or None,
            scopes=scopes,
        )
