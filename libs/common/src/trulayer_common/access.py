"""Who may call a route: credential kinds, roles, API-key scopes, and the one check of them.

Every route declares an :class:`Access`; the gateway checks it on the authenticated caller and
the control-engine checks it again on the forwarded principal (defence in depth: a gateway bug
cannot hand out admin). The rules:

* **Credential kinds**: ``api_key`` (SDKs, servers) and/or ``session`` (dashboards). A valid
  credential of a kind the route does not accept is 403 (``session_required`` /
  ``api_key_required``). An access with no kinds is public.
* **Roles**: ``owner`` > ``member`` > ``viewer``. Sessions carry their role; an API key acts as
  ``owner`` when it has the ``owner`` scope, else as ``member``. Below the route's minimum
  role → 403 ``insufficient_role``.
* **Scopes** (API keys only; sessions are governed by their role): ``ingest`` sends data
  (traces, OTLP, feedback, eval requests, decision reports), ``read`` reads data and
  configuration, ``write`` changes configuration an API key may change (alert rules,
  webhooks, eval rules), ``owner`` implies all three. A key without the route's scope → 403
  ``insufficient_scope``. New keys default to ``ingest`` + ``read``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

from trulayer_common.errors import forbidden

Role = Literal["owner", "member", "viewer"]
AuthKind = Literal["api_key", "session"]
Scope = Literal["ingest", "read", "write", "owner"]
ROLES: tuple[Role, ...] = get_args(Role)
AUTH_KINDS: tuple[AuthKind, ...] = get_args(AuthKind)
SCOPES: tuple[Scope, ...] = get_args(Scope)
DEFAULT_KEY_SCOPES: tuple[Scope, ...] = ("ingest", "read")
_RANK: dict[str, int] = {"viewer": 0, "member": 1, "owner": 2}


def role_at_least(role: str, minimum: Role) -> bool:
    return _RANK.get(role, -1) >= _RANK[minimum]


def api_key_role(scopes: Iterable[str]) -> Role:
    """API keys act as ``owner`` when created with the owner scope, else as ``member``."""
    return "owner" if "owner" in scopes else "member"


def has_scope(scopes: Iterable[str], scope: Scope) -> bool:
    granted = set(scopes)
    return scope in granted or "owner" in granted


@dataclass(frozen=True, slots=True)
class Access:
    """What a route accepts. ``kinds`` empty: public (no credential at all)."""

    kinds: frozenset[AuthKind]
    scope: Scope | None = None
    role: Role = "viewer"

    @property
    def public(self) -> bool:
        return not self.kinds

    def check(self, kind: AuthKind, role: str, scopes: Iterable[str]) -> None:
        """Raise 403 unless a caller of ``kind`` with ``role`` and ``scopes`` may call the route."""
        if kind not in self.kinds:
            if kind == "api_key":
                raise forbidden("This endpoint needs a dashboard session, not an API key", "session_required")
            raise forbidden("This endpoint needs an API key, not a session", "api_key_required")
        if kind == "api_key" and self.scope is not None and not has_scope(scopes, self.scope):
            raise forbidden(f"This API key lacks the '{self.scope}' scope", "insufficient_scope")
        if not role_at_least(role, self.role):
            raise forbidden(f"This action needs the '{self.role}' role", "insufficient_role")


_ANY: frozenset[AuthKind] = frozenset(AUTH_KINDS)
_KEY: frozenset[AuthKind] = frozenset({"api_key"})
_SESSION: frozenset[AuthKind] = frozenset({"session"})

PUBLIC = Access(frozenset())
INGEST = Access(_KEY, scope="ingest", role="member")
"""Sending data: API keys with the ``ingest`` scope."""
READ = Access(_ANY, scope="read")
"""Reading data or configuration: sessions of any role, API keys with ``read``."""
WRITE = Access(_ANY, scope="write", role="member")
"""Changing configuration an API key may change: members' sessions, keys with ``write``."""
SESSION_VIEWER = Access(_SESSION)
SESSION_MEMBER = Access(_SESSION, role="member")
SESSION_OWNER = Access(_SESSION, role="owner")
