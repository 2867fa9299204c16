"""``POST /v1/feedback``: a user's judgement of one trace, through ``trulayer.feedback``.

201 with the stored shape once the broker acknowledged the record; 404 for a trace the tenant
does not have; 400/422 for a bad body (``label`` ∈ good, bad, neutral). Feedback is shown on
``GET /v1/traces/{id}`` once the ingest-worker stored it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from aiohttp import web

from gateway.params import iso
from gateway.records import produce
from gateway.resources import config_state, principal_key, settings_key
from gateway.trace_lookup import find_trace
from trulayer_common.http import get_request_id, json_response, read_json_model
from trulayer_common.schemas.evals import FeedbackCreate
from trulayer_common.topics import feedback as feedback_records

MAX_FEEDBACK_BYTES = 256 * 1024


async def post_feedback(request: web.Request) -> web.Response:
    principal = request[principal_key]
    limit = min(request.app[settings_key].max_body_bytes, MAX_FEEDBACK_BYTES)
    body = await read_json_model(request, FeedbackCreate, limit)
    tenant_id = principal.tenant.id
    trace = await find_trace(request, tenant_id, body.trace_id)
    project = request.app[config_state].projects.get(trace.project_id)
    now = datetime.now(UTC)
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # storage keeps milliseconds
    item = feedback_records.Feedback(
        id=str(uuid.uuid4()),
        trace_id=trace.id,
        label=body.label,
        score=body.score,
        comment=body.comment,
        metadata=body.metadata,
        created_at=now,
        retention_days=project.retention_days_override if project is not None else None,
    )
    value = feedback_records.encode(
        item, tenant_id=tenant_id, project_id=trace.project_id, request_id=get_request_id(request)
    )
    await produce(request, [(feedback_records.TOPIC, feedback_records.key(item), value)])
    return json_response(
        {
            "id": item.id,
            "trace_id": item.trace_id,
            "project_id": trace.project_id,
            "label": item.label,
            "score": item.score,
            "comment": item.comment,
            "metadata": item.metadata,
            "created_at": iso(item.created_at),
        },
        status=201,
    )
