"""Route access rules and path checks (pure logic of trulayer_common.access and .routing)."""

from __future__ import annotations

import pytest

from trulayer_common.access import INGEST, PUBLIC, READ, SESSION_MEMBER, SESSION_OWNER, WRITE, api_key_role
from trulayer_common.control_api import CONTROL_ROUTES
from trulayer_common.errors import ApiError
from trulayer_common.principal import ForwardedPrincipal, InvalidPrincipalError
from trulayer_common.routing import SEGMENT, check_path


def _code(fn, *args) -> str | None:
    try:
        fn(*args)
    except ApiError as exc:
        assert exc.status == 403
        return exc.code
    return None


@pytest.mark.parametrize(
    ("access", "kind", "role", "scopes", "code"),
    [
        (INGEST, "api_key", "member", {"ingest"}, None),
        (INGEST, "api_key", "member", {"read"}, "insufficient_scope"),
        (INGEST, "api_key", "owner", {"owner"}, None),  # owner implies every scope
        (INGEST, "session", "owner", set(), "api_key_required"),
        (READ, "api_key", "member", {"ingest"}, "insufficient_scope"),
        (READ, "api_key", "member", {"read"}, None),
        (READ, "session", "viewer", set(), None),
        (WRITE, "api_key", "member", {"ingest", "read"}, "insufficient_scope"),
        (WRITE, "api_key", "member", {"write"}, None),
        (WRITE, "session", "viewer", set(), "insufficient_role"),
        (WRITE, "session", "member", set(), None),
        (SESSION_MEMBER, "api_key", "owner", {"owner"}, "session_required"),
        (SESSION_OWNER, "session", "member", set(), "insufficient_role"),
        (SESSION_OWNER, "session", "owner", set(), None),
    ],
)
def test_access_matrix(access, kind, role, scopes, code):
    assert _code(access.check, kind, role, scopes) == code


def test_public_access_and_key_roles():
    assert PUBLIC.public and not READ.public
    assert api_key_role(["ingest", "read"]) == "member"
    assert api_key_role(["owner"]) == "owner"


@pytest.mark.parametrize(
    "raw",
    [
        "/v1/alerts/%2e%2e/apikeys",
        "/v1/alerts/%2E%2E/apikeys",
        "/v1/alerts/..%2fapikeys",
        "/v1/alerts/..%2Fapikeys",
        "/v1/failure-rules/%2e%2e/%2e%2e/v1/apikeys",
        "/v1/webhooks/%2e%2e/%2e%2e/internal/guardlayer/api-keys",
        "/v1/alerts/a%5c..",
        "/v1/alerts/a%00",
    ],
)
def test_encoded_separators_are_refused(raw: str):
    from urllib.parse import unquote

    with pytest.raises(ApiError) as exc:
        check_path(raw, unquote(raw))
    assert (exc.value.status, exc.value.code) == (400, "invalid_path")


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("/v1/alerts/../apikeys", "/v1/alerts/../apikeys"),
        ("/v1/alerts/./x", "/v1/alerts/./x"),
        ("/v1/alerts//x", "/v1/alerts//x"),
        ("/v1/alerts/%252e%252e/apikeys", "/v1/alerts/%2e%2e/apikeys"),  # double encoded
    ],
)
def test_dot_and_empty_segments_are_refused(raw: str, decoded: str):
    with pytest.raises(ApiError):
        check_path(raw, decoded)


def test_ordinary_paths_pass():
    check_path("/v1/traces/tr-1", "/v1/traces/tr-1")
    check_path("/v1/traces/a.b%20c", "/v1/traces/a.b c")
    assert SEGMENT.match("0f9c2b6e-1234") and not SEGMENT.match("..") and not SEGMENT.match(".x")


def test_forwarded_principal_round_trips_and_refuses_forgeries():
    principal = ForwardedPrincipal("t1", "api_key", "member", "api_key:k", "k", frozenset({"ingest", "read"}))
    assert ForwardedPrincipal.from_headers(principal.to_headers()) == principal
    assert ForwardedPrincipal.from_headers({}) is None
    headers = principal.to_headers()
    for name, value in (("X-Trulayer-Role", "root"), ("X-Trulayer-Scopes", "ingest,admin")):
        with pytest.raises(InvalidPrincipalError):
            ForwardedPrincipal.from_headers({**headers, name: value})


def test_control_routes_are_declared_once_with_names():
    keys = [(s.method, s.path) for s in CONTROL_ROUTES]
    names = [s.name for s in CONTROL_ROUTES]
    assert len(set(keys)) == len(keys) and len(set(names)) == len(names)
    # Every tenancy route is session-only; alert and webhook writes need the write scope.
    for spec in CONTROL_ROUTES:
        if spec.path.startswith(("/v1/projects", "/v1/apikeys")):
            assert spec.access.kinds == frozenset({"session"}), spec.path
        if spec.path.startswith(("/v1/alerts", "/v1/failure-rules", "/v1/webhooks")) and spec.method != "GET":
            assert spec.access.scope == "write", spec.path
