"""The SDK surface of the control plane, served from this replica's memory (API.md "Control
engine"): ``GET /v1/control/config`` (ETag, ``max-age=60``, 304), the SSE stream
(:mod:`gateway.config_stream`), ``POST /v1/control/decide``, ``POST /v1/control/execute`` and
``POST /v1/control/decisions``. Nothing here calls the control-engine or ClickHouse: bundles
come from the materialised config log (:mod:`gateway.policy_bundles`), live windows from the
signals topic (:mod:`gateway.live_signals`), and the decision is the SDK's own function
(``trulayer_sdk.policy.decide``).

* The stream is served only to requests that accept ``text/event-stream`` (else 406), so a
  generic HTTP client is never left hanging on it.
* ``decide`` answers the decision; ``execute`` enforces it in the status: 503
  ``error.kill_switch_active`` while a kill switch covers the request, 403
  ``error.policy_blocked`` (with ``rule_id``) when a policy or route blocks, else 200 with the
  decision (the caller goes on with ``target_model``). Both log the decision
  (:class:`~gateway.decision_log.DecisionLog`, off the request path).
* The request's ``project_id`` (id or name) must be the tenant's (another tenant's: 403);
  absent or unknown, the API key's own project (sessions: none).
* ``decisions``: ≤100 reports per request ("Max 100 events per batch"), each ``decided_at``
  within 7 days before receipt and at most 5 minutes after; produced and acknowledged by the
  broker before ``202 {accepted}`` (503 otherwise). A report's ``id`` is stored once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

from aiohttp import web
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from gateway.auth import Principal
from gateway.config_stream import ConfigStream, StreamHub
from gateway.decision_log import LOGGED, DecisionLog, decision_record
from gateway.live_signals import LiveSignals
from gateway.policy_bundles import PolicyBundles
from gateway.resources import config_state, principal_key, producer_key, settings_key
from trulayer_common.config import ConfigState
from trulayer_common.errors import ApiError, bad_request, forbidden, unavailable
from trulayer_common.http import get_request_id, json_response, read_body, read_json_model, validation_error
from trulayer_common.schemas import BATCH_TOO_LARGE, batch_too_large
from trulayer_common.schemas.bounds import refuse_unstorable_numbers
from trulayer_common.schemas.control_sdk import DecideRequest, DecisionReport, DecisionReportBatch
from trulayer_common.topics import control_decisions
from trulayer_common.topics.control_decisions import ControlDecision
from trulayer_sdk.policy import Decision, DecisionRequest, decide

bundles_key = web.AppKey("policy_bundles", PolicyBundles)
live_signals_key = web.AppKey("live_signals", LiveSignals)
decision_log_key = web.AppKey("decision_log", DecisionLog)
stream_hub_key = web.AppKey("stream_hub", StreamHub)
CACHE_CONTROL = "max-age=60"
MAX_REPORT_AGE = timedelta(days=7)
MAX_REPORT_SKEW = timedelta(minutes=5)
MAX_DECIDE_BODY = 64 * 1024


def own_project(principal: Principal) -> str | None:
    return principal.api_key.project_id if principal.api_key is not None else None


def resolve_project(state: ConfigState, principal: Principal, requested: str | None) -> str:
    """The request's project id: the tenant's by id or name, else the caller's own ("")."""
    tenant_id = principal.tenant.id
    if requested:
        project = state.project_of_tenant(tenant_id, requested)
        if project is not None:
            return project.id
        other = state.projects.get(requested)
        if other is not None and other.tenant_id != tenant_id:
            raise forbidden("Project belongs to another tenant")
    return own_project(principal) or ""


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in tags or etag in tags


async def get_config(request: web.Request) -> web.StreamResponse:
    principal = request[principal_key]
    view = request.app[bundles_key].view(principal.tenant.id, own_project(principal))
    headers = {"ETag": view.etag, "Cache-Control": CACHE_CONTROL}
    if _matches(request.headers.get("If-None-Match"), view.etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=view.body, content_type="application/json", headers=headers)


async def config_stream(request: web.Request) -> web.StreamResponse:
    principal = request[principal_key]
    if "text/event-stream" not in request.headers.get("Accept", ""):
        # A stream never ends: only clients that ask for one get it (EventSource and the SDK do).
        raise ApiError(406, "This is an event stream: send 'Accept: text/event-stream'", "not_acceptable")
    hub = request.app[stream_hub_key]
    sub = hub.open(principal.tenant.id)
    try:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        stream = ConfigStream(
            request.app[settings_key],
            request.app[config_state],
            request.app[bundles_key],
            request.app[live_signals_key],
        )
        await stream.run(request, response, sub, principal)
        return response
    finally:
        hub.close(sub)


def _decide(request: web.Request, principal: Principal, body: DecideRequest) -> tuple[Decision, ControlDecision]:
    state = request.app[config_state]
    tenant_id = principal.tenant.id
    project_id = resolve_project(state, principal, body.project_id)
    view = request.app[bundles_key].view(tenant_id, own_project(principal))
    signals = request.app[live_signals_key].of(tenant_id)
    request_key = body.request_id or get_request_id(request)
    now = time.time()
    metadata = body.metadata or {}
    decision = decide(
        view.bundle,
        signals,
        DecisionRequest(body.model, project_id, request_key, now, body.retry_depth, body.cascade_depth, metadata),
    )
    record = decision_record(
        decision,
        decision_id=uuid.uuid4().hex,
        decided_at=datetime.fromtimestamp(now, UTC),
        source="server",
        project_id=project_id,
        requested_model=body.model,
        retry_depth=body.retry_depth,
        cascade_depth=body.cascade_depth,
        metadata=metadata,
        request_id=request_key,
    )
    request.app[decision_log_key].add(tenant_id, record)
    return decision, record


def _answer(decision: Decision, record: ControlDecision) -> dict[str, object]:
    return {"id": record["id"], **decision.to_json()}


async def decide_route(request: web.Request) -> web.Response:
    body = await read_json_model(request, DecideRequest, MAX_DECIDE_BODY)
    decision, record = _decide(request, request[principal_key], body)
    return json_response(_answer(decision, record))


async def execute_route(request: web.Request) -> web.Response:
    body = await read_json_model(request, DecideRequest, MAX_DECIDE_BODY)
    decision, record = _decide(request, request[principal_key], body)
    if decision.reason == "kill_switch":
        raise ApiError(
            503,
            "Kill switch active: calls are stopped until an owner disables it",
            "error.kill_switch_active",
            extra={"retry_after_seconds": 30},
            headers={"Retry-After": "30"},
        )
    if decision.blocked:
        raise ApiError(
            403,
            f"Blocked by policy ({decision.reason})",
            "error.policy_blocked",
            extra={"rule_id": decision.rule_id},
        )
    return json_response(_answer(decision, record))


def _report_record(
    state: ConfigState, principal: Principal, report: DecisionReport, index: int, received: datetime
) -> ControlDecision:
    decided_at = report.decided_at or received
    if decided_at.tzinfo is None:
        decided_at = decided_at.replace(tzinfo=UTC)
    if not received - MAX_REPORT_AGE <= decided_at <= received + MAX_REPORT_SKEW:
        raise bad_request(
            f"Invalid field 'decisions.{index}.decided_at': more than 7 days before or 5 minutes after now",
            "validation_error",
        )
    decision = Decision(
        report.decision,
        report.target_model,
        report.rule_id,
        report.reason,
        report.dry_run,
        report.action,
        report.config_type,
    )
    return decision_record(
        decision,
        decision_id=report.id or uuid.uuid4().hex,
        decided_at=decided_at,
        source="sdk",
        project_id=resolve_project(state, principal, report.project_id),
        requested_model=report.model,
        retry_depth=report.retry_depth,
        cascade_depth=report.cascade_depth,
        metadata=report.metadata,
        request_id=report.request_id,
        status=report.status,
    )


async def report_decisions(request: web.Request) -> web.Response:
    principal = request[principal_key]
    settings = request.app[settings_key]
    raw = await read_body(request, settings.max_body_bytes)
    try:
        batch = DecisionReportBatch.model_validate_json(raw)
    except ValidationError as exc:
        raise (BATCH_TOO_LARGE if batch_too_large(exc) else validation_error(exc)) from None
    refuse_unstorable_numbers(raw)
    received = datetime.now(UTC)
    state = request.app[config_state]
    records = [_report_record(state, principal, r, i, received) for i, r in enumerate(batch.decisions)]
    projects = {r["project_id"] for r in records}
    value = control_decisions.encode(
        records,
        tenant_id=principal.tenant.id,
        project_id=projects.pop() if len(projects) == 1 else "",
        request_id=get_request_id(request),
        received_at=received,
    )
    try:
        await asyncio.wait_for(
            request.app[producer_key].send_and_wait(
                control_decisions.TOPIC,
                value=value,
                key=control_decisions.key(records),
                headers=control_decisions.headers(records),
            ),
            settings.produce_timeout_seconds,
        )
    except (KafkaError, TimeoutError) as exc:
        raise unavailable("Decision reports are temporarily unavailable: the broker did not acknowledge", 2) from exc
    LOGGED.labels("sdk").inc(len(records))
    return json_response({"accepted": len(records)}, status=202)
