"""The configuration log: entities written by the control-engine to the compacted topic
``trulayer.config`` and materialised in memory by every service that needs them."""

from trulayer_common.config.entities import ApiKey, ConfigRecord, Plan, Project, Tenant, TenantLimits, hash_api_key
from trulayer_common.config.plans import PlanCatalog, PlanLimits
from trulayer_common.config.reader import ConfigLogReader
from trulayer_common.config.state import ConfigState

__all__ = [
    "ApiKey",
    "ConfigLogReader",
    "ConfigRecord",
    "ConfigState",
    "Plan",
    "PlanCatalog",
    "PlanLimits",
    "Project",
    "Tenant",
    "TenantLimits",
    "hash_api_key",
]
