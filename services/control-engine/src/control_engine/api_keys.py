"""``/v1/apikeys``: create (secret shown once), list (no secrets), revoke, rotate.

Roles: members create and list keys; only owners revoke and rotate (a rotation revokes the old
secret), and only owners create keys with the ``owner`` scope. Revoked and rotated-away
secrets are refused by every gateway replica as soon as the config record reaches it.
``last_used_at`` comes from Redis (:mod:`trulayer_common.config.key_usage`), never from a
config write per request.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from control_engine.projects import project_of, tenant_of
from control_engine.requests import principal_of
from control_engine.resources import reader_key, redis_key, settings_key, tenant_write
from control_engine.tenants import generate_api_key, new_id
from trulayer_common.config import ApiKey
from trulayer_common.config.key_usage import last_uses
from trulayer_common.errors import ApiError, forbidden, not_found
from trulayer_common.http import json_response, read_json_model
from trulayer_common.logging import get_logger
from trulayer_common.routing import path_param
from trulayer_common.schemas.control import ApiKeyCreate

log = get_logger(__name__)


def key_json(key: ApiKey, last_used_at: datetime | None = None) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "project_id": key.project_id,
        "scopes": key.scopes,
        "created_at": key.created_at.isoformat(),
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
        "last_used_at": last_used_at.isoformat() if last_used_at else None,
    }


def _key_of(request: web.Request, key_id: str) -> ApiKey:
    key = request.app[reader_key].state.api_keys.get(key_id)
    if key is None:
        raise not_found(f"API key '{key_id}' not found")
    if key.tenant_id != principal_of(request).tenant_id:
        raise forbidden("API key belongs to another tenant")
    return key


async def list_keys(request: web.Request) -> web.Response:
    principal = principal_of(request)
    state = request.app[reader_key].state
    tenant_of(state, principal)
    keys = sorted(state.api_keys_of(principal.tenant_id), key=lambda k: (k.created_at, k.id))
    try:
        used = await last_uses(request.app[redis_key], [k.id for k in keys])
    except RedisError as exc:  # a listing without last use beats no listing
        log.warning("key_usage_unavailable", error=repr(exc))
        used = {}
    return json_response({"api_keys": [key_json(k, used.get(k.id)) for k in keys]})


async def create_key(request: web.Request) -> web.Response:
    principal = principal_of(request)
    body = await read_json_model(request, ApiKeyCreate, request.app[settings_key].max_body_bytes)
    if "owner" in body.scopes:
        principal.require_role("owner")
    async with tenant_write(request, principal) as tx:
        tenant = tenant_of(tx.state, principal)
        if body.project_id is not None:
            project = project_of(tx.state, principal, body.project_id)
        else:
            active = sorted((p for p in tx.state.projects_of(tenant.id) if not p.archived), key=lambda p: p.created_at)
            if not active:
                raise ApiError(409, "The tenant has no active project", "conflict")
            project = active[0]
        secret, key_hash, prefix = generate_api_key()
        key = ApiKey(
            id=new_id(),
            tenant_id=tenant.id,
            project_id=project.id,
            name=body.name.strip() or "key",
            prefix=prefix,
            key_hash=key_hash,
            scopes=sorted(set(body.scopes)),
            created_at=datetime.now(UTC),
        )
        await tx.commit(key, "api_key.create")
    return json_response({**key_json(key), "key": secret}, status=201)


async def revoke_key(request: web.Request) -> web.Response:
    principal = principal_of(request)
    async with tenant_write(request, principal) as tx:
        key = _key_of(request, path_param(request, "key_id"))
        if key.revoked_at is None:
            key = key.model_copy(update={"revoked_at": datetime.now(UTC)})
            await tx.commit(key, "api_key.revoke")
    return json_response(key_json(key))


async def rotate_key(request: web.Request) -> web.Response:
    principal = principal_of(request)
    async with tenant_write(request, principal) as tx:
        key = _key_of(request, path_param(request, "key_id"))
        if key.revoked_at is not None:
            raise ApiError(409, "A revoked key cannot be rotated", "conflict")
        secret, key_hash, prefix = generate_api_key()
        key = key.model_copy(update={"key_hash": key_hash, "prefix": prefix})
        await tx.commit(key, "api_key.rotate")
    return json_response({**key_json(key), "key": secret})


HANDLERS = {
    "apikeys.list": list_keys,
    "apikeys.create": create_key,
    "apikeys.revoke": revoke_key,
    "apikeys.rotate": rotate_key,
}
