"""``POST /v1/metrics/query``: the analytical query API (seed 002, TrueFoundry's wire shape).

The body is checked by :mod:`gateway.query.request` (a 400 naming the field, operator or value
at fault), answered by :class:`~gateway.query.engine.QueryEngine` for the caller's tenant only
(from rollups where they give the same answer as raw rows), as
``{"data": {"dataPoints": [...]}}``.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from gateway.query.engine import QueryEngine
from gateway.query.request import QueryError, parse_query
from gateway.resources import principal_key
from trulayer_common.errors import ApiError, bad_request
from trulayer_common.http import json_response, read_body

MAX_QUERY_BYTES = 64 * 1024
query_engine_key = web.AppKey("query_engine", QueryEngine)


async def post_metrics_query(request: web.Request) -> web.Response:
    principal = request[principal_key]
    raw = await read_body(request, MAX_QUERY_BYTES)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, "Malformed JSON body", "malformed_json") from None
    try:
        query = parse_query(body)
        points = await request.app[query_engine_key].run(query, principal.tenant.id)
    except QueryError as exc:
        raise bad_request(str(exc), "invalid_query") from None
    return json_response({"data": {"dataPoints": points}})
