"""The kill switch (``/v1/control/killswitch``) and the tenant's safe default
(``/v1/control/safe-default``).

Only owners' sessions switch or set them (an API key gets 403 ``session_required``); any
session or a key with ``read`` reads them. Switching writes a :class:`KillSwitch` entity to the
config log: every gateway replica applies it within milliseconds and every decision then
blocks (``kill_switch``), connected SDKs get the new bundle pushed. Enabling an enabled switch
writes nothing new (same answer). The answer is the tenant's state read after the change.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from control_engine.policies_api import caught_up, resolve_project
from control_engine.requests import principal_of
from control_engine.resources import reader_key, settings_key, tenant_write
from trulayer_common.config.control_entities import KillSwitch, SafeDefault, killswitch_id
from trulayer_common.http import json_response, read_json_model
from trulayer_common.schemas.policies import KillSwitchChange, SafeDefaultBody, killswitch_json, safe_default_json


async def _change_body(request: web.Request) -> KillSwitchChange:
    """The optional body: none at all means the whole tenant."""
    if not request.body_exists:
        return KillSwitchChange()
    return await read_json_model(request, KillSwitchChange, request.app[settings_key].max_body_bytes)


async def get_killswitch(request: web.Request) -> web.Response:
    principal = principal_of(request)
    state = await caught_up(request)
    return json_response(killswitch_json(state.control.of(principal.tenant_id).killswitches.values()))


async def _switch(request: web.Request, active: bool) -> web.Response:
    principal = principal_of(request)
    body = await _change_body(request)
    async with tenant_write(request, principal) as tx:
        project_id = resolve_project(tx.state, principal.tenant_id, body.project_id, "project_id")
        switch_id = killswitch_id(principal.tenant_id, project_id)
        current = tx.state.control.of(principal.tenant_id).killswitches.get(switch_id)
        if current is None or current.active != active or (active and body.reason and body.reason != current.reason):
            switch = KillSwitch(
                id=switch_id,
                tenant_id=principal.tenant_id,
                project_id=project_id,
                active=active,
                reason=body.reason,
                updated_at=datetime.now(UTC),
                updated_by=principal.actor,
            )
            await tx.commit(switch, "killswitch.enable" if active else "killswitch.disable")
    state = request.app[reader_key].state
    return json_response(killswitch_json(state.control.of(principal.tenant_id).killswitches.values()))


async def enable_killswitch(request: web.Request) -> web.Response:
    return await _switch(request, True)


async def disable_killswitch(request: web.Request) -> web.Response:
    return await _switch(request, False)


async def get_safe_default(request: web.Request) -> web.Response:
    principal = principal_of(request)
    state = await caught_up(request)
    tenant = state.control.of(principal.tenant_id)
    return json_response(safe_default_json(tenant.effective_safe_default(), stored=tenant.safe_default is not None))


async def set_safe_default(request: web.Request) -> web.Response:
    principal = principal_of(request)
    body = await read_json_model(request, SafeDefaultBody, request.app[settings_key].max_body_bytes)
    safe_default = SafeDefault(
        id=principal.tenant_id,
        tenant_id=principal.tenant_id,
        enforcement=body.enforcement,
        routing=body.routing,
        updated_at=datetime.now(UTC),
        updated_by=principal.actor,
    )
    async with tenant_write(request, principal) as tx:
        await tx.commit(safe_default, "safe_default.set")
    return json_response(safe_default_json(safe_default))


HANDLERS = {
    "killswitch.get": get_killswitch,
    "killswitch.enable": enable_killswitch,
    "killswitch.disable": disable_killswitch,
    "safe_default.get": get_safe_default,
    "safe_default.set": set_safe_default,
}
