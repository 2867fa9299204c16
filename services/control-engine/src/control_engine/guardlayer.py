"""GuardLayer compatibility: ``POST /api/v1/api-keys {customer_name}`` creates a tenant and a key.

Served at ``/internal/guardlayer/api-keys`` and reached only through the gateway, which exposes
it (unauthenticated, as GuardLayer does) when ``GUARDLAYER_COMPAT=true``; the control-engine
answers 404 unless its own ``GUARDLAYER_COMPAT`` is on too (defence in depth). The tenant is a
starter tenant with a ``default`` project and the three default alert rules; the answer has
GuardLayer's shape.
"""

from __future__ import annotations

from aiohttp import web

from control_engine.resources import audit_key, settings_key, writer_key
from control_engine.tenants import create_tenant
from trulayer_common.errors import not_found
from trulayer_common.http import get_request_id, json_response, read_json_model
from trulayer_common.schemas.control import GuardLayerKeyRequest


async def create_guardlayer_key(request: web.Request) -> web.Response:
    if not request.app[settings_key].guardlayer_compat:
        raise not_found()
    body = await read_json_model(request, GuardLayerKeyRequest, request.app[settings_key].max_body_bytes)
    name = body.customer_name.strip() or "guardlayer"
    created = await create_tenant(
        request.app[writer_key],
        name,
        "starter",
        actor="guardlayer-compat",
        audit=request.app[audit_key],
        request_id=get_request_id(request),
    )
    return json_response(
        {
            "message": "API key created. Save this key — it cannot be retrieved again.",
            "api_key": created.secret,
            "key_id": created.api_key.id,
            "key_prefix": created.api_key.prefix + "...",
            "customer_name": name,
            "tenant_id": created.tenant.id,
            "project_id": created.project.id,
            "created_at": created.api_key.created_at.isoformat(),
            "default_alerts_created": len(created.alert_rules),
        },
        status=201,
    )


HANDLERS = {"guardlayer.create_key": create_guardlayer_key}
