"""Each tenant's policy bundle, built from this replica's materialised config log.

:meth:`PolicyBundles.view` answers ``(bundle, JSON body, ETag, version)`` for a tenant and the
calling key's own project. Views are cached per tenant × project and rebuilt only when the
tenant's control revision moves (a policy, route, kill switch, safe default or project
changed), so ``GET /v1/control/config`` and ``/decide`` cost a dictionary read. The decision
function reads :attr:`BundleView.bundle`, parsed from the very body SDKs receive
(``trulayer_sdk.policy.PolicyBundle.from_json``): one shape for both.

The ETag is a hash of the body: identical on every replica that read the same log, so a
client moving between replicas keeps its 304s. ``version`` is the newest change's log time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from trulayer_common.config import ConfigState
from trulayer_common.config.control import TenantControl
from trulayer_common.schemas.policies import model_route_json, policy_json
from trulayer_sdk.policy import PolicyBundle


@dataclass(frozen=True, slots=True)
class BundleView:
    bundle: PolicyBundle
    body: bytes
    etag: str
    version: int


def bundle_json(control: TenantControl, projects: dict[str, str], default_project_id: str | None) -> dict[str, Any]:
    """The wire bundle (``PolicyBundleOut``): active policies and enabled routes by priority."""
    tenant_switch = control.killswitches.get(control.tenant_id)
    switched_off = sorted(
        (s for s in control.killswitches.values() if s.project_id is not None and s.active),
        key=lambda s: (s.updated_at, s.id),
    )
    safe_default = control.effective_safe_default()
    return {
        "version": control.version,
        "killswitch": {
            "active": bool(tenant_switch and tenant_switch.active),
            "reason": tenant_switch.reason if tenant_switch and tenant_switch.active else None,
            "updated_at": tenant_switch.updated_at.isoformat() if tenant_switch else None,
            "projects": [
                {"project_id": s.project_id, "reason": s.reason, "updated_at": s.updated_at.isoformat()}
                for s in switched_off
            ],
        },
        "policies": [policy_json(p) for p in sorted(control.deciding_policies(), key=lambda p: (p.priority, p.id))],
        "model_routes": [
            model_route_json(r) for r in sorted(control.enabled_routes(), key=lambda r: (r.priority, r.id))
        ],
        "safe_default": {"enforcement": safe_default.enforcement, "routing": safe_default.routing},
        "projects": projects,
        "default_project_id": default_project_id,
    }


class PolicyBundles:
    def __init__(self, state: ConfigState) -> None:
        self._state = state
        self._cache: dict[tuple[str, str | None], tuple[int, BundleView]] = {}

    def revision(self, tenant_id: str) -> int:
        return self._state.control.of(tenant_id).revision

    def view(self, tenant_id: str, default_project_id: str | None) -> BundleView:
        control = self._state.control.of(tenant_id)
        key = (tenant_id, default_project_id)
        cached = self._cache.get(key)
        if cached is not None and cached[0] == control.revision:
            return cached[1]
        projects = {p.name: p.id for p in sorted(self._state.projects_of(tenant_id), key=lambda p: p.name)}
        data = bundle_json(control, projects, default_project_id)
        body = orjson.dumps(data)
        view = BundleView(
            bundle=PolicyBundle.from_json(data),
            body=body,
            etag='"' + hashlib.sha256(body).hexdigest()[:24] + '"',
            version=control.version,
        )
        self._cache[key] = (control.revision, view)
        return view
