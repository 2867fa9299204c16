"""The gateway's public API at a glance: every operation it serves or forwards, declared once.

Each entry binds a :class:`~trulayer_common.routing.RouteSpec` (method, path, access, limit
bucket, OpenAPI operation) to its handler. Served here: ingest, reads of traces, metrics and
alerting, health and the API document. Forwarded: the control-plane operations of
:data:`trulayer_common.control_api.CONTROL_ROUTES`. With ``GUARDLAYER_COMPAT`` on, GuardLayer's
``/api/v1/...`` aliases are added.
"""

from __future__ import annotations

from dataclasses import replace

from gateway import alerting_reads, control_sdk, evaluation_reads
from gateway.control_proxy import forward_to
from gateway.evals import get_catalog, post_eval
from gateway.export import FORMATS, export_traces
from gateway.feedback import post_feedback
from gateway.ingest import ingest_batch, ingest_one
from gateway.ingestion_health import WINDOWS, get_ingestion_health
from gateway.live_tail import live_traces
from gateway.metrics import get_metrics
from gateway.metrics_query import post_metrics_query
from gateway.openapi import docs, openapi_json
from gateway.otlp import PROTOBUF, otlp_traces
from gateway.routes import Route
from gateway.settings import GatewaySettings
from gateway.traces import get_trace, list_traces
from trulayer_common.access import INGEST, PUBLIC, READ
from trulayer_common.control_api import CONTROL_ROUTES, GUARDLAYER_KEYS
from trulayer_common.health import health_routes
from trulayer_common.routing import Operation, QueryParam, RouteSpec
from trulayer_common.schemas import BatchRequest, TraceRequest
from trulayer_common.schemas.control import AlertRuleList, AlertRuleOut, AnomalyList, AnomalyOut
from trulayer_common.schemas.control_sdk import (
    DecideRequest,
    DecisionOut,
    DecisionReportBatch,
    DecisionsAccepted,
    PolicyBundleOut,
)
from trulayer_common.schemas.evals import (
    EvalAccepted,
    EvalCatalog,
    EvalCreate,
    EvalTrends,
    EvaluationDetail,
    EvaluationList,
    FeedbackCreate,
    FeedbackOut,
)
from trulayer_common.schemas.metrics_query import MetricsQueryRequest, MetricsQueryResponse
from trulayer_common.schemas.otlp import OtlpExportResponse, OtlpExportTraceRequest
from trulayer_common.schemas.reads import IngestionHealth
from trulayer_common.schemas.responses import (
    BatchIngestResponse,
    DuplicateResponse,
    IngestResponse,
    MetricsResponse,
    TraceDetail,
    TraceList,
)

TRACE_FILTERS = (
    QueryParam("project_id", "string", "project id or name of the tenant"),
    QueryParam("model", "string", "exact model name"),
    QueryParam("error", "boolean", "true: only traces with an error; false: only without"),
    QueryParam(
        "failure_type",
        "string",
        "kind of failure",
        ("timeout", "rate_limit", "invalid_response", "context_length"),
    ),
    QueryParam("from", "string", "ISO 8601 or unix seconds, inclusive, on started_at"),
    QueryParam("to", "string", "ISO 8601 or unix seconds, exclusive"),
    QueryParam("latency_min", "number", "ms"),
    QueryParam("latency_max", "number", "ms"),
    QueryParam("token_count_min", "integer", "total tokens"),
    QueryParam("token_count_max", "integer", "total tokens"),
    QueryParam("tag_key", "string", "tag present (list tags) or key present (map tags)"),
    QueryParam("tag_value", "string", "with tag_key: map value, or list tag 'key:value'"),
    QueryParam("session_id", "string", ""),
)
_INGEST_ERRORS = (400, 401, 403, 413, 415, 422, 429, 503)
# 503: the read pool is full (Retry-After); 504: a read stopped at its time limit.
_READ_ERRORS = (400, 401, 403, 404, 429, 503, 504)


def _ingest() -> list[Route]:
    return [
        Route(
            RouteSpec(
                "POST",
                "/v1/ingest",
                INGEST,
                "ingest",
                Operation(
                    "Ingest one trace (idempotent by id)",
                    "ingest",
                    TraceRequest,
                    {201: IngestResponse, 200: DuplicateResponse},
                    errors=_INGEST_ERRORS,
                ),
                "ingest.one",
            ),
            ingest_one,
        ),
        Route(
            RouteSpec(
                "POST",
                "/v1/ingest/batch",
                INGEST,
                "ingest",
                Operation(
                    "Ingest up to 100 traces, or GuardLayer calls",
                    "ingest",
                    BatchRequest,
                    {201: BatchIngestResponse},
                    errors=_INGEST_ERRORS,
                ),
                "ingest.batch",
            ),
            ingest_batch,
        ),
        Route(
            RouteSpec(
                "POST",
                "/v1/otlp/traces",
                INGEST,
                "ingest",
                Operation(
                    "Ingest an OTLP/HTTP trace export (OpenTelemetry exporters)",
                    "ingest",
                    OtlpExportTraceRequest,
                    {200: OtlpExportResponse},
                    errors=_INGEST_ERRORS,
                    description=(
                        "`ExportTraceServiceRequest` as protobuf (`application/x-protobuf`, answered in "
                        "protobuf) or OTLP JSON (`application/json`); `Content-Encoding: gzip` or `deflate` "
                        "allowed; 413 over 20 MiB compressed or decompressed. Spans map onto traces, spans "
                        "and events (GenAI semantic conventions, old and new names; see docs/otlp.md); "
                        "rejected spans are counted and named in `partialSuccess`."
                    ),
                    binary_content_types=(PROTOBUF,),
                ),
                "ingest.otlp_traces",
            ),
            otlp_traces,
        ),
    ]


def _reads() -> list[Route]:
    return [
        Route(
            RouteSpec(
                "GET",
                "/v1/traces",
                READ,
                "read",
                Operation(
                    "List traces (newest first, cursor pagination)",
                    "traces",
                    responses={200: TraceList},
                    query=(
                        *TRACE_FILTERS,
                        QueryParam("limit", "integer", "1..200, default 50"),
                        QueryParam("cursor", "string", "next_cursor of the previous page"),
                    ),
                    errors=_READ_ERRORS,
                ),
                "traces.list",
            ),
            list_traces,
        ),
        # Declared before /v1/traces/{trace_id}, which would otherwise match them.
        Route(
            RouteSpec(
                "GET",
                "/v1/traces/export",
                READ,
                "read",
                Operation(
                    "Every trace matching the filters, newest first, streamed as CSV or JSON lines",
                    "traces",
                    responses={200: None},
                    query=(
                        *TRACE_FILTERS,
                        QueryParam("format", "string", "csv (default) or jsonl", tuple(FORMATS)),
                        QueryParam("limit", "integer", "at most this many traces (1..10,000,000)"),
                    ),
                    errors=_READ_ERRORS,
                    response_media=tuple(FORMATS.values()),
                    description="Columns and memory bounds: docs/reads.md.",
                ),
                "traces.export",
            ),
            export_traces,
        ),
        Route(
            RouteSpec(
                "GET",
                "/v1/traces/live",
                READ,
                "read",
                Operation(
                    "Server-Sent Events: one frame per newly stored trace of the tenant",
                    "traces",
                    responses={200: None},
                    query=(QueryParam("project_id", "string", "only this project's traces"),),
                    errors=(*_READ_ERRORS, 429),
                    response_media=("text/event-stream",),
                    description="Frames `data: {trace_id, project_id, name, model, status, latency_ms, created_at}`; "
                    "heartbeat comments on idle streams; a client that falls behind is dropped (docs/reads.md).",
                ),
                "traces.live",
            ),
            live_traces,
        ),
        Route(
            RouteSpec(
                "GET",
                "/v1/traces/{trace_id}",
                READ,
                "read",
                Operation(
                    "One trace with spans, events, feedback, evaluations",
                    "traces",
                    responses={200: TraceDetail},
                    errors=_READ_ERRORS,
                ),
                "traces.get",
            ),
            get_trace,
        ),
        Route(
            RouteSpec(
                "GET",
                "/v1/metrics",
                READ,
                "read",
                Operation(
                    "Summary metrics; with hours=N also GuardLayer's breakdowns",
                    "metrics",
                    responses={200: MetricsResponse},
                    query=(*TRACE_FILTERS, QueryParam("hours", "number", "window ending now, 0 < hours ≤ 8784")),
                    errors=_READ_ERRORS,
                ),
                "metrics.summary",
            ),
            get_metrics,
        ),
        Route(
            RouteSpec(
                "POST",
                "/v1/metrics/query",
                READ,
                "read",
                Operation(
                    "Analytical query: a distribution or a timeseries of aggregations over a data source",
                    "metrics",
                    MetricsQueryRequest,
                    {200: MetricsQueryResponse},
                    errors=(*_READ_ERRORS, 413, 415),
                    description="TrueFoundry's metrics-query wire shape (API.md 'Read'); docs/reads.md",
                ),
                "metrics.query",
            ),
            post_metrics_query,
        ),
        Route(
            RouteSpec(
                "GET",
                "/v1/ingestion-health",
                READ,
                "read",
                Operation(
                    "Ingestion health: request outcomes, ingest lag, dead letters, last trace",
                    "metrics",
                    responses={200: IngestionHealth},
                    query=(
                        QueryParam("project_id", "string", "project id or name (traces, lag, dead letters)"),
                        QueryParam("window", "string", "default 24h", tuple(WINDOWS)),
                    ),
                    errors=_READ_ERRORS,
                ),
                "ingestion.health",
            ),
            get_ingestion_health,
        ),
    ]


def _alerting_reads() -> list[Route]:
    anomaly_query = (
        QueryParam("project_id", "string", "project id or name"),
        QueryParam("type", "string", "", alerting_reads.ANOMALY_TYPES),
        QueryParam("severity", "string", "", alerting_reads.SEVERITIES),
        QueryParam("from", "string", "on the window start, inclusive"),
        QueryParam("to", "string", "on the window start, exclusive"),
        QueryParam("limit", "integer", "1..200, default 50"),
    )
    routes: list[Route] = []
    for base, label in (("/v1/alerts", "alerts"), ("/v1/failure-rules", "failure_rules")):
        routes += [
            Route(
                RouteSpec(
                    "GET",
                    base,
                    READ,
                    "api",
                    Operation(
                        f"List alert rules and recent alert events ({label} path)",
                        "alerts",
                        responses={200: AlertRuleList},
                        errors=_READ_ERRORS,
                    ),
                    f"{label}.list",
                ),
                alerting_reads.list_rules,
            ),
            Route(
                RouteSpec(
                    "GET",
                    base + "/{rule_id}",
                    READ,
                    "api",
                    Operation(
                        f"Get an alert rule ({label} path)",
                        "alerts",
                        responses={200: AlertRuleOut},
                        errors=_READ_ERRORS,
                    ),
                    f"{label}.get",
                ),
                alerting_reads.get_rule,
            ),
        ]
    return [
        *routes,
        Route(
            RouteSpec(
                "GET",
                "/v1/anomalies",
                READ,
                "api",
                Operation(
                    "Detected anomalies, newest first",
                    "alerts",
                    responses={200: AnomalyList},
                    query=anomaly_query,
                    errors=_READ_ERRORS,
                ),
                "anomalies.list",
            ),
            alerting_reads.list_anomalies,
        ),
        Route(
            RouteSpec(
                "GET",
                "/v1/anomalies/{anomaly_id}",
                READ,
                "api",
                Operation("One anomaly", "alerts", responses={200: AnomalyOut}, errors=_READ_ERRORS),
                "anomalies.get",
            ),
            alerting_reads.get_anomaly,
        ),
    ]


def _control_sdk() -> list[Route]:
    """The SDK surface of the control plane, served from memory (``gateway.control_sdk``):
    reads of the bundle and decisions need ``read`` (or a session); decision reports are data
    (``ingest``). Decide/execute count in the tenant's read window, the rest in ``api``, and
    reports in the key's ingest window."""
    tag = "control"
    decide_errors = (400, 401, 403, 413, 415, 422, 429)
    return [
        Route(
            RouteSpec(
                "GET",
                "/v1/control/config",
                READ,
                "api",
                Operation(
                    "The tenant's policy bundle (ETag; If-None-Match → 304; Cache-Control max-age=60)",
                    tag,
                    responses={200: PolicyBundleOut, 304: None},
                    errors=(401, 403, 429, 503),
                ),
                "control.config",
            ),
            control_sdk.get_config,
        ),
        Route(
            RouteSpec(
                "GET",
                "/v1/control/config/stream",
                READ,
                "api",
                Operation(
                    "Server-Sent Events: the bundle on connect and on every change, live signals, heartbeats",
                    tag,
                    responses={200: None},
                    errors=(401, 403, 406, 429, 503),
                    description="Needs `Accept: text/event-stream` (else 406). Frames: `event: bundle` "
                    "(id: the ETag), `event: signals`, `: heartbeat` comments.",
                ),
                "control.config_stream",
            ),
            control_sdk.config_stream,
        ),
        Route(
            RouteSpec(
                "POST",
                "/v1/control/decide",
                READ,
                "read",
                Operation(
                    "Decide a call: allow, block or route (logged)",
                    tag,
                    DecideRequest,
                    {200: DecisionOut},
                    errors=decide_errors,
                ),
                "control.decide",
            ),
            control_sdk.decide_route,
        ),
        Route(
            RouteSpec(
                "POST",
                "/v1/control/execute",
                READ,
                "read",
                Operation(
                    "Decide and enforce: 503 error.kill_switch_active, 403 error.policy_blocked, else the decision",
                    tag,
                    DecideRequest,
                    {200: DecisionOut},
                    errors=(*decide_errors, 503),
                ),
                "control.execute",
            ),
            control_sdk.execute_route,
        ),
        Route(
            RouteSpec(
                "POST",
                "/v1/control/decisions",
                INGEST,
                "ingest",
                Operation(
                    "Report decisions an SDK took locally (≤100)",
                    tag,
                    DecisionReportBatch,
                    {202: DecisionsAccepted},
                    errors=_INGEST_ERRORS,
                ),
                "control.decisions",
            ),
            control_sdk.report_decisions,
        ),
    ]


def _evals() -> list[Route]:
    """Feedback and evaluations (API.md "Feedback and evals"); eval rules are control-plane routes."""
    tag = "evals"
    filters = (
        QueryParam("trace_id", "string", ""),
        QueryParam("project_id", "string", "project id or name of the tenant"),
        QueryParam("metric", "string", "metric name"),
        QueryParam("status", "string", "", evaluation_reads.STATUSES),
        QueryParam("from", "string", "ISO 8601 or unix seconds, inclusive, on created_at"),
        QueryParam("to", "string", "ISO 8601 or unix seconds, exclusive"),
        QueryParam("score_min", "number", "0..1"),
        QueryParam("score_max", "number", "0..1"),
    )
    return [
        Route(
            RouteSpec(
                "POST",
                "/v1/feedback",
                INGEST,
                "ingest",
                Operation(
                    "Record feedback on a trace",
                    tag,
                    FeedbackCreate,
                    {201: FeedbackOut},
                    errors=(*_INGEST_ERRORS, 404),
                ),
                "feedback.create",
            ),
            post_feedback,
        ),
        Route(
            RouteSpec(
                "POST",
                "/v1/eval",
                INGEST,
                "ingest",
                Operation(
                    "Evaluate a trace (runs asynchronously: poll GET /v1/eval/{eval_id})",
                    tag,
                    EvalCreate,
                    {202: EvalAccepted},
                    errors=(402, 404, *_INGEST_ERRORS),
                ),
                "evals.create",
            ),
            post_eval,
        ),
        Route(
            RouteSpec(
                "GET",
                "/v1/eval",
                READ,
                "api",
                Operation(
                    "List evaluations (newest first, cursor pagination)",
                    tag,
                    responses={200: EvaluationList},
                    query=(
                        *filters,
                        QueryParam("limit", "integer", "1..200, default 50"),
                        QueryParam("cursor", "string", "next_cursor of the previous page"),
                    ),
                    errors=_READ_ERRORS,
                ),
                "evals.list",
            ),
            evaluation_reads.list_evaluations,
        ),
        # Declared before /v1/eval/{eval_id}, which would otherwise match it.
        Route(
            RouteSpec(
                "GET",
                "/v1/eval/trends",
                READ,
                "api",
                Operation(
                    "Average score per metric per time bucket (complete evaluations)",
                    tag,
                    responses={200: EvalTrends},
                    query=(
                        *filters,
                        QueryParam(
                            "interval", "string", "bucket width, default hour", tuple(evaluation_reads.INTERVALS)
                        ),
                    ),
                    errors=_READ_ERRORS,
                ),
                "evals.trends",
            ),
            evaluation_reads.eval_trends,
        ),
        Route(
            RouteSpec(
                "GET",
                "/v1/eval/{eval_id}",
                READ,
                "api",
                Operation(
                    "One evaluation, with its configuration and what the judge was asked",
                    tag,
                    responses={200: EvaluationDetail},
                    errors=_READ_ERRORS,
                ),
                "evals.get",
            ),
            evaluation_reads.get_evaluation,
        ),
        Route(
            RouteSpec(
                "GET",
                "/v1/eval-catalog",
                READ,
                "api",
                Operation(
                    "The built-in evaluators and their configuration",
                    tag,
                    responses={200: EvalCatalog},
                    errors=_READ_ERRORS,
                ),
                "evals.catalog",
            ),
            get_catalog,
        ),
    ]


def _documents() -> list[Route]:
    return [
        Route(
            RouteSpec(
                "GET",
                "/openapi.json",
                PUBLIC,
                "none",
                Operation("This document (OpenAPI 3.1)", "meta", responses={200: None}, errors=()),
                "meta.openapi",
            ),
            openapi_json,
        ),
        Route(
            RouteSpec(
                "GET",
                "/docs",
                PUBLIC,
                "none",
                Operation("The API reference (HTML)", "meta", responses={200: None}, errors=()),
                "meta.docs",
            ),
            docs,
        ),
        *(Route(spec, handler) for spec, handler in health_routes()),
    ]


def _forwarded() -> list[Route]:
    return [Route(spec, forward_to(spec.path)) for spec in CONTROL_ROUTES if spec is not GUARDLAYER_KEYS]


def _guardlayer(routes: list[Route]) -> list[Route]:
    """GuardLayer's ``/api/v1/...`` aliases of ingest, metrics and alert rules, and its
    unauthenticated key creation (which creates a starter tenant)."""
    aliased = {"ingest.one", "ingest.batch", "metrics.summary"}
    out: list[Route] = []
    for route in routes:
        spec = route.spec
        if spec.name in aliased or spec.path.startswith("/v1/alerts"):
            alias = replace(spec, path="/api" + spec.path, name="guardlayer." + spec.name)
            out.append(Route(alias, route.handler))
    keys = replace(GUARDLAYER_KEYS, path="/api/v1/api-keys", name="guardlayer.api_keys")
    out.append(Route(keys, forward_to(GUARDLAYER_KEYS.path)))
    return out


def gateway_routes(settings: GatewaySettings) -> list[Route]:
    routes = [
        *_ingest(),
        *_reads(),
        *_alerting_reads(),
        *_evals(),
        *_control_sdk(),
        *_forwarded(),
        *_documents(),
    ]
    if settings.guardlayer_compat:
        routes += _guardlayer(routes)
    return routes
