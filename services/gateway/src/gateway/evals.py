"""``POST /v1/eval`` (an evaluation of one trace, run by the eval-engine) and ``GET
/v1/eval-catalog``.

``POST /v1/eval`` validates the metric against the catalog (400 naming it, and the field of a
bad ``config``), looks the trace up (404 when the tenant has none), takes one evaluation from
the plan's monthly quota (402 ``eval_quota_exceeded``), then produces, and waits for the
acknowledgement of, both the request (``trulayer.eval.requests``) and the evaluation's
``pending`` state (``trulayer.eval.results``), so that ``GET /v1/eval/{id}`` shows it at once.
Answer: ``202 {eval_id, status: "pending"}``. A produce that fails gives the quota back (503).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from aiohttp import web
from prometheus_client import Counter
from redis.exceptions import RedisError

from gateway.auth import Principal
from gateway.records import produce
from gateway.resources import config_state, eval_quota_key, principal_key, settings_key
from gateway.trace_lookup import find_trace
from trulayer_common.errors import ApiError
from trulayer_common.evals.catalog import (
    CATALOG_PATH,
    InvalidConfigError,
    UnknownMetricError,
    catalog_json,
    resolve,
)
from trulayer_common.http import get_request_id, json_response, read_json_model
from trulayer_common.logging import get_logger
from trulayer_common.schemas.evals import EvalCreate
from trulayer_common.topics import eval_requests, eval_results

log = get_logger(__name__)
MAX_EVAL_BYTES = 512 * 1024
EVALS_REQUESTED = Counter("trulayer_gateway_evals_requested_total", "evaluations accepted by POST /v1/eval")
QUOTA_FAIL_OPEN = Counter("trulayer_gateway_eval_quota_fail_open_total", "eval quota checks skipped: Redis down")


def _resolved(body: EvalCreate) -> None:
    try:
        resolve(body.metric_name, body.evaluator_type, body.config)
    except UnknownMetricError as exc:
        raise ApiError(
            400,
            str(exc),
            "unknown_metric",
            extra={"catalog": CATALOG_PATH, "details": [{"field": "metric_name", "message": str(exc)}]},
        ) from None
    except InvalidConfigError as exc:
        raise ApiError(
            400, str(exc), "validation_error", extra={"details": [{"field": exc.field, "message": str(exc)}]}
        ) from None


async def _take_quota(request: web.Request, principal: Principal) -> bool:
    """One evaluation from the month's quota; 402 when none is left. Whether one was taken."""
    quota = request.app.get(eval_quota_key)
    limit = request.app[settings_key].plans.for_tenant(principal.tenant).monthly_evals
    if quota is None or limit is None:
        return False
    try:
        taken = await quota.take(principal.tenant.id, limit, 1, all_or_none=True)
    except RedisError as exc:
        QUOTA_FAIL_OPEN.inc()
        log.warning("eval_quota_fail_open", tenant_id=principal.tenant.id, error=repr(exc))
        return False
    if not taken.granted:
        raise ApiError(
            402,
            "Monthly eval quota exhausted",
            "eval_quota_exceeded",
            extra={"limit": limit, "used": taken.used, "resets_at": taken.resets_at.isoformat()},
        )
    return True


async def _give_back(request: web.Request, principal: Principal) -> None:
    quota = request.app.get(eval_quota_key)
    if quota is not None:
        try:
            await quota.give_back(principal.tenant.id, 1)
        except RedisError as exc:
            log.warning("eval_quota_release_failed", tenant_id=principal.tenant.id, error=repr(exc))


async def post_eval(request: web.Request) -> web.Response:
    principal: Principal = request[principal_key]
    body = await read_json_model(request, EvalCreate, min(request.app[settings_key].max_body_bytes, MAX_EVAL_BYTES))
    _resolved(body)
    tenant_id = principal.tenant.id
    trace = await find_trace(request, tenant_id, body.trace_id)
    taken = await _take_quota(request, principal)
    now = datetime.now(UTC)
    eval_id = str(uuid.uuid4())
    project = request.app[config_state].projects.get(trace.project_id)
    job = eval_requests.EvalRequest(
        eval_id=eval_id,
        trace_id=trace.id,
        metric_name=body.metric_name,
        evaluator_type=body.evaluator_type,
        config=body.config,
        created_at=now,
        model=trace.model,
    )
    pending = eval_results.Evaluation(
        id=eval_id,
        trace_id=trace.id,
        project_id=trace.project_id,
        metric_name=body.metric_name,
        evaluator_type=body.evaluator_type,
        status="pending",
        created_at=now,
        model=trace.model,
        config=body.config,
        version=eval_results.state_version(0, "pending"),
        updated_at=now,
        retention_days=project.retention_days_override if project is not None else None,
    )
    request_id = get_request_id(request)
    records = [
        (
            eval_requests.TOPIC,
            eval_requests.key(job),
            eval_requests.encode(job, tenant_id=tenant_id, project_id=trace.project_id, request_id=request_id),
        ),
        (
            eval_results.TOPIC,
            eval_results.key([pending]),
            eval_results.encode([pending], tenant_id=tenant_id, request_id=request_id),
        ),
    ]
    try:
        await produce(request, records)
    except ApiError:
        if taken:
            await _give_back(request, principal)
        raise
    EVALS_REQUESTED.inc()
    return json_response({"eval_id": eval_id, "status": "pending"}, status=202)


async def get_catalog(request: web.Request) -> web.Response:
    return json_response(_CATALOG)


_CATALOG = catalog_json()
