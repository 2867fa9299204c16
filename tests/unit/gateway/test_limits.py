"""Pure logic of limits and plans (no Redis, no Kafka)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.api import gateway_routes
from gateway.auth import Principal
from gateway.limits import classify, month_bounds
from gateway.settings import GatewaySettings
from trulayer_common.config import ApiKey, PlanCatalog, Tenant, TenantLimits

NOW = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)
TENANT = Tenant(id="t1", name="t", plan="starter", created_at=NOW)
KEY = ApiKey(id="k1", tenant_id="t1", project_id="p1", name="k", prefix="tl_x", key_hash="h", created_at=NOW)
KEY_PRINCIPAL = Principal(TENANT, "api_key", "member", "api_key:k1", KEY)
SESSION_PRINCIPAL = Principal(TENANT, "session", "owner", "user:u")


def test_plan_defaults_follow_api_md():
    plans = PlanCatalog()
    assert plans.starter.monthly_traces == 50_000
    assert plans.pro.monthly_traces == 1_000_000
    assert plans.starter.read_requests_per_minute == 60 * 60
    assert plans.pro.read_requests_per_minute == 600 * 60
    assert plans.starter.ingest_requests_per_minute == plans.pro.ingest_requests_per_minute == 1_000
    assert plans.starter.eval_rules == 3
    enterprise = plans.enterprise
    assert (enterprise.monthly_traces, enterprise.read_rps, enterprise.ingest_requests_per_minute) == (None, None, None)
    assert plans.lowest_plan_with("retention_override") == "pro"


def test_tenant_overrides_replace_single_values():
    tenant = TENANT.model_copy(update={"limits": TenantLimits(monthly_traces=7)})
    limits = PlanCatalog().for_tenant(tenant)
    assert limits.monthly_traces == 7
    assert limits.read_rps == 60  # untouched values keep the plan's


def test_environment_overrides_one_value_and_keeps_the_plan_defaults(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PLANS__STARTER__MONTHLY_TRACES", "123")
    plans = GatewaySettings().plans
    assert plans.starter.monthly_traces == 123
    assert plans.starter.read_rps == 60
    assert plans.pro.monthly_traces == 1_000_000


@pytest.mark.parametrize(
    ("method", "path", "principal", "family", "subject"),
    [
        ("POST", "/v1/ingest", KEY_PRINCIPAL, "ingest", "k1"),
        ("POST", "/v1/ingest/batch", KEY_PRINCIPAL, "ingest", "k1"),
        ("GET", "/v1/traces", KEY_PRINCIPAL, "read", "t1"),
        ("GET", "/v1/traces/abc", SESSION_PRINCIPAL, "read", "t1"),
        ("GET", "/v1/metrics", KEY_PRINCIPAL, "read", "t1"),
        ("GET", "/v1/projects", SESSION_PRINCIPAL, "api", "t1"),
        ("POST", "/v1/alerts", KEY_PRINCIPAL, "api", "t1"),
        ("GET", "/v1/anomalies", KEY_PRINCIPAL, "api", "t1"),
        ("GET", "/openapi.json", KEY_PRINCIPAL, "none", "t1"),
    ],
)
def test_declared_routes_count_in_their_windows(
    method: str, path: str, principal: Principal, family: str, subject: str
):
    """The limit bucket comes from the route's declaration (gateway.api), not from its path."""
    specs = {(r.spec.method, r.spec.path): r.spec for r in gateway_routes(GatewaySettings())}
    template = "/v1/traces/{trace_id}" if path == "/v1/traces/abc" else path
    result = classify(specs[(method, template)].limit, principal, PlanCatalog().starter)
    assert (result.name, result.subject) == (family, subject)


def test_unlimited_bucket_and_sessions_on_ingest():
    assert classify("none", KEY_PRINCIPAL, PlanCatalog().starter).limit is None
    # A session can never reach an ingest route, but if it did it would count per tenant.
    assert classify("ingest", SESSION_PRINCIPAL, PlanCatalog().starter).name == "api"


def test_month_bounds_roll_over_the_year():
    assert month_bounds(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == (
        "2026-12",
        int(datetime(2027, 1, 1, tzinfo=UTC).timestamp()),
    )
    assert month_bounds(NOW)[0] == "2026-03"


def test_session_principal_has_no_api_key():
    with pytest.raises(Exception) as exc:
        SESSION_PRINCIPAL.require_api_key()
    assert getattr(exc.value, "status", None) == 403
