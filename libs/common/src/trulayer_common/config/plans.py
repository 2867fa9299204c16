"""Plans and their limits: the defaults of API.md, overridable per deployment and per tenant.

A limit of ``None`` means "no hard limit" (enterprise). The catalogue is a settings field of
every service that enforces limits (``PLANS__STARTER__MONTHLY_TRACES=...`` in the environment);
a tenant's ``limits`` field overrides single values of its plan.
"""

from __future__ import annotations

from typing import get_args

from pydantic import BaseModel, ConfigDict, Field

from trulayer_common.config.entities import Plan, Tenant, TenantLimits

PLAN_ORDER: tuple[Plan, ...] = get_args(Plan)

# Features gated by plan (402 plan_upgrade_required below the lowest plan that has them).
FEATURE_RETENTION_OVERRIDE = "retention_override"


class PlanLimits(BaseModel):
    """What one plan allows. ``None``: unlimited."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    monthly_traces: int | None = Field(default=None, ge=0, description="ingested traces per calendar month (UTC)")
    read_rps: int | None = Field(default=None, ge=0, description="read requests/s, counted per 1-minute window")
    ingest_requests_per_minute: int | None = Field(default=None, ge=0, description="ingest requests/min per API key")
    eval_rules: int | None = Field(default=None, ge=0, description="eval rules per tenant")
    monthly_evals: int | None = Field(default=None, ge=0, description="evaluations per calendar month")
    features: frozenset[str] = frozenset()

    @property
    def read_requests_per_minute(self) -> int | None:
        return None if self.read_rps is None else self.read_rps * 60

    def with_overrides(self, overrides: TenantLimits | None) -> PlanLimits:
        if overrides is None:
            return self
        changes = {name: value for name, value in overrides.model_dump().items() if value is not None}
        return self.model_copy(update=changes) if changes else self


class StarterLimits(PlanLimits):
    monthly_traces: int | None = 50_000
    read_rps: int | None = 60
    ingest_requests_per_minute: int | None = 1_000
    eval_rules: int | None = 3
    monthly_evals: int | None = 1_000


class ProLimits(PlanLimits):
    monthly_traces: int | None = 1_000_000
    read_rps: int | None = 600
    ingest_requests_per_minute: int | None = 1_000
    features: frozenset[str] = frozenset({FEATURE_RETENTION_OVERRIDE})


class EnterpriseLimits(PlanLimits):
    features: frozenset[str] = frozenset({FEATURE_RETENTION_OVERRIDE})


class PlanCatalog(BaseModel):
    """The three plans. Each field has its own defaults, so overriding one value of a plan
    through the environment keeps the plan's other defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    starter: StarterLimits = StarterLimits()
    pro: ProLimits = ProLimits()
    enterprise: EnterpriseLimits = EnterpriseLimits()

    def of(self, plan: Plan) -> PlanLimits:
        limits: PlanLimits = getattr(self, plan)
        return limits

    def for_tenant(self, tenant: Tenant) -> PlanLimits:
        """The tenant's effective limits: its plan's, with its own overrides applied."""
        return self.of(tenant.plan).with_overrides(tenant.limits)

    def lowest_plan_with(self, feature: str) -> Plan | None:
        for plan in PLAN_ORDER:
            if feature in self.of(plan).features:
                return plan
        return None
