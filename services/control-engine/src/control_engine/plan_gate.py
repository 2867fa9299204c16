"""Plan checks of the control plane: features above the tenant's plan, and per-plan caps.

Callers check caps inside :meth:`TenantWrites.write`, on the caught-up state, so two
concurrent creations cannot both pass (the eval-rule cap of starter tenants reuses this).
"""

from __future__ import annotations

from trulayer_common.config import PlanCatalog, Tenant
from trulayer_common.errors import ApiError


def require_feature(plans: PlanCatalog, tenant: Tenant, feature: str, what: str) -> None:
    """402 ``plan_upgrade_required`` with ``required_plan`` when the tenant's plan lacks ``feature``."""
    if feature in plans.for_tenant(tenant).features:
        return
    required = plans.lowest_plan_with(feature)
    raise ApiError(
        402,
        f"{what} is not available on the {tenant.plan} plan",
        "plan_upgrade_required",
        extra={"required_plan": required or "enterprise"},
    )


def require_below_cap(limit: int | None, current: int, code: str, what: str) -> None:
    """402 ``code`` when ``current`` already reaches ``limit`` (``None``: no cap)."""
    if limit is not None and current >= limit:
        raise ApiError(402, f"{what}: the plan allows {limit}", code, extra={"limit": limit})
