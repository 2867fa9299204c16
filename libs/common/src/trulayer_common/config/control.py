"""In-memory materialisation of the control entities, per tenant (part of :class:`ConfigState`).

Lookups are by tenant, O(1): the gateway builds a tenant's bundle from :meth:`ControlConfig.of`
and the alerter asks :meth:`TenantControl.tracks_models` for every observation. Each tenant's
``revision`` goes up with every change applied (a cache key), and ``version`` is the newest
change's log time in milliseconds: the same on every replica that read the same log, and
monotonic (archived policies and deleted routes count, since their records stay on the log).

Listeners (:meth:`ControlConfig.listen`) are called with the tenant id after each change, in
the reader's task: they must be quick and must not raise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from trulayer_common.config.control_entities import ControlEntity, KillSwitch, ModelRoute, Policy, SafeDefault
from trulayer_common.logging import get_logger

log = get_logger(__name__)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class TenantControl:
    tenant_id: str
    policies: dict[str, Policy] = field(default_factory=dict)
    model_routes: dict[str, ModelRoute] = field(default_factory=dict)
    killswitches: dict[str, KillSwitch] = field(default_factory=dict)
    safe_default: SafeDefault | None = None
    revision: int = 0
    version: int = 0
    tracks_models: bool = False
    """Whether any active policy or enabled route reads live windows (per-model signals needed)."""
    window_seconds: frozenset[int] = frozenset()
    """The window lengths the tenant's policies and routes read."""

    def effective_safe_default(self) -> SafeDefault:
        return self.safe_default or SafeDefault(id=self.tenant_id, tenant_id=self.tenant_id, updated_at=_EPOCH)

    def deciding_policies(self) -> list[Policy]:
        return [p for p in self.policies.values() if p.status == "active"]

    def enabled_routes(self) -> list[ModelRoute]:
        return [r for r in self.model_routes.values() if r.enabled]

    def _refresh(self) -> None:
        policies = self.deciding_policies()
        routes = [r for r in self.enabled_routes() if r.condition.type != "always"]
        windows = {p.rule.window_minutes * 60 for p in policies} | {r.condition.window_minutes * 60 for r in routes}
        self.tracks_models = bool(policies or routes)
        self.window_seconds = frozenset(w for w in windows if w > 0)


Listener = Callable[[str], None]


class ControlConfig:
    def __init__(self) -> None:
        self._tenants: dict[str, TenantControl] = {}
        self._owner: dict[tuple[str, str], str] = {}  # (kind, id) → tenant, for tombstones
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def of(self, tenant_id: str) -> TenantControl:
        """The tenant's control configuration (empty when it has none)."""
        found = self._tenants.get(tenant_id)
        return found if found is not None else TenantControl(tenant_id)

    def owner(self, kind: str, entity_id: str) -> str | None:
        """The tenant an entity of ``kind`` belongs to (None: no such entity)."""
        return self._owner.get((kind, entity_id))

    def apply(self, entity: ControlEntity, at: datetime) -> None:
        tenant = self._tenants.get(entity.tenant_id)
        if tenant is None:
            tenant = self._tenants[entity.tenant_id] = TenantControl(entity.tenant_id)
        self._owner[(entity.kind, entity.id)] = entity.tenant_id
        if isinstance(entity, Policy):
            tenant.policies[entity.id] = entity
        elif isinstance(entity, ModelRoute):
            tenant.model_routes.pop(entity.id, None)
            if entity.deleted_at is None:
                tenant.model_routes[entity.id] = entity
        elif isinstance(entity, KillSwitch):
            tenant.killswitches[entity.id] = entity
        else:
            tenant.safe_default = entity
        self._changed(tenant, int(at.timestamp() * 1000))

    def touch(self, tenant_id: str) -> None:
        """Something besides the control entities changed that bundles show (a project) or that
        open streams must re-check (an API key): bump the tenant's revision and tell the
        listeners, without changing its version."""
        tenant = self._tenants.get(tenant_id)
        if tenant is None:
            tenant = self._tenants[tenant_id] = TenantControl(tenant_id)
        self._changed(tenant, tenant.version)

    def delete(self, kind: str, entity_id: str) -> None:
        """A tombstone for ``<kind>:<id>``."""
        tenant_id = self._owner.pop((kind, entity_id), None)
        tenant = self._tenants.get(tenant_id) if tenant_id is not None else None
        if tenant is None:
            return
        if kind == "policy":
            tenant.policies.pop(entity_id, None)
        elif kind == "model_route":
            tenant.model_routes.pop(entity_id, None)
        elif kind == "killswitch":
            tenant.killswitches.pop(entity_id, None)
        elif kind == "safe_default":
            tenant.safe_default = None
        self._changed(tenant, tenant.version)

    def _changed(self, tenant: TenantControl, at_ms: int) -> None:
        tenant.revision += 1
        tenant.version = max(tenant.version, at_ms)
        tenant._refresh()
        for listener in self._listeners:
            try:
                listener(tenant.tenant_id)
            except Exception:  # a listener's bug must not stop the config reader
                log.exception("control_listener_failed", tenant_id=tenant.tenant_id)
