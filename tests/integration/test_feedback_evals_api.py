"""Feedback and the evaluations API on the real Kafka, Redis and chDB, with the eval-engine
running: status codes and error bodies of API.md, shapes validated against the response
models, tenant isolation, quotas."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from gateway.resources import config_state
from tests.integration.conftest import Harness, Tenant, eventually, trace
from trulayer_common.config import TenantLimits
from trulayer_common.schemas.evals import (
    EvalAccepted,
    EvalCatalog,
    EvalTrends,
    EvaluationDetail,
    EvaluationList,
    FeedbackOut,
)
from trulayer_common.schemas.responses import ErrorBody, TraceDetail


class Api:
    def __init__(self, harness: Harness, http: aiohttp.ClientSession, tenant: Tenant) -> None:
        self.harness, self.http, self.tenant = harness, http, tenant

    async def call(self, method: str, path: str, body: Any = None, expect: int | None = None, **kw: Any) -> Any:
        async with self.http.request(
            method, self.harness.gateway_url + path, json=body, headers=self.tenant.headers, **kw
        ) as resp:
            data = await resp.json()
            if expect is not None:
                assert resp.status == expect, (resp.status, data)
            if resp.status >= 400:
                ErrorBody.model_validate(data)
            return data

    async def stored_trace(self, **fields: Any) -> dict[str, Any]:
        body = trace(**fields)
        await self.call("POST", "/v1/ingest", body, expect=201)

        async def stored() -> bool:
            async with self.http.get(
                f"{self.harness.gateway_url}/v1/traces/{body['id']}", headers=self.tenant.headers
            ) as resp:
                return resp.status == 200

        await eventually(stored)
        return body

    async def evaluation(self, eval_id: str, status: str | tuple[str, ...] = "complete") -> dict[str, Any]:
        wanted = (status,) if isinstance(status, str) else status

        async def done() -> dict[str, Any] | None:
            async with self.http.get(
                f"{self.harness.gateway_url}/v1/eval/{eval_id}", headers=self.tenant.headers
            ) as resp:
                if resp.status != 200:
                    return None
                data = await resp.json()
                return data if data["status"] in wanted else None

        result: dict[str, Any] = await eventually(done, timeout=30)
        EvaluationDetail.model_validate(result)
        return result


@pytest.fixture
async def api(eval_engine: Harness, http: aiohttp.ClientSession, tenant: Tenant) -> Api:
    return Api(eval_engine, http, tenant)


async def test_feedback_is_stored_and_shown_on_the_trace(api: Api) -> None:
    body = await api.stored_trace(output="hello")
    created = await api.call(
        "POST",
        "/v1/feedback",
        {"trace_id": body["id"], "label": "good", "score": 0.9, "comment": "nice", "metadata": {"user": "u1"}},
        expect=201,
    )
    FeedbackOut.model_validate(created)
    assert (created["trace_id"], created["label"], created["score"]) == (body["id"], "good", 0.9)

    async def shown() -> dict[str, Any] | None:
        detail = await api.call("GET", f"/v1/traces/{body['id']}", expect=200)
        return detail if detail["feedback"] else None

    detail = await eventually(shown)
    TraceDetail.model_validate(detail)
    (feedback,) = detail["feedback"]
    assert feedback == {**created, "metadata": {"user": "u1"}}


async def test_feedback_errors(api: Api) -> None:
    body = await api.stored_trace()
    unknown = await api.call("POST", "/v1/feedback", {"trace_id": "no-such-trace", "label": "good"}, expect=404)
    assert unknown["code"] == "not_found"
    bad_label = await api.call("POST", "/v1/feedback", {"trace_id": body["id"], "label": "great"}, expect=400)
    assert bad_label["details"][0]["field"] == "label"
    missing = await api.call("POST", "/v1/feedback", {"label": "good"}, expect=422)
    assert missing["details"][0]["field"] == "trace_id"
    await api.call("POST", "/v1/feedback", {"trace_id": body["id"], "label": "bad", "score": "NaN"}, expect=400)
    async with api.http.post(
        f"{api.harness.gateway_url}/v1/feedback",
        data=b"not json",
        headers={**api.tenant.headers, "Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 400
    async with api.http.post(f"{api.harness.gateway_url}/v1/feedback", data=b"{}", headers=api.tenant.headers) as resp:
        assert resp.status == 415
    async with api.http.post(
        f"{api.harness.gateway_url}/v1/feedback", json={"trace_id": body["id"], "label": "good"}
    ) as resp:
        assert resp.status == 401


async def test_feedback_right_after_ingest_waits_for_the_trace(api: Api) -> None:
    """An SDK sends feedback as soon as its trace was acknowledged: not a 404."""
    body = trace()
    await api.call("POST", "/v1/ingest", body, expect=201)
    await api.call("POST", "/v1/feedback", {"trace_id": body["id"], "label": "neutral"}, expect=201)


async def test_on_demand_deterministic_evaluation(api: Api) -> None:
    body = await api.stored_trace(output='{"answer": 42}', latency_ms=250)
    accepted = await api.call(
        "POST", "/v1/eval", {"trace_id": body["id"], "evaluator_type": "rule", "metric_name": "json_valid"}, expect=202
    )
    EvalAccepted.model_validate(accepted)
    assert accepted["status"] == "pending"
    # Visible at once (the gateway produced the pending state), then complete.
    result = await api.evaluation(accepted["eval_id"], ("pending", "complete"))
    assert result["trace_id"] == body["id"]
    result = await api.evaluation(accepted["eval_id"])
    assert (result["score"], result["label"], result["attempts"], result["judge"]) == (1.0, "pass", 1, None)
    assert result["completed_at"] is not None and result["config"] == {}

    failing = await api.call(
        "POST",
        "/v1/eval",
        {
            "trace_id": body["id"],
            "evaluator_type": "rule",
            "metric_name": "latency_threshold",
            "config": {"max_ms": 100},
        },
        expect=202,
    )
    result = await api.evaluation(failing["eval_id"])
    assert (result["score"], result["label"]) == (0.4, "fail")

    listed = await api.call("GET", f"/v1/eval?trace_id={body['id']}", expect=200)
    EvaluationList.model_validate(listed)
    assert {e["id"] for e in listed["evaluations"]} == {accepted["eval_id"], failing["eval_id"]}
    only_low = await api.call("GET", f"/v1/eval?trace_id={body['id']}&score_max=0.5", expect=200)
    assert [e["id"] for e in only_low["evaluations"]] == [failing["eval_id"]]
    page = await api.call("GET", f"/v1/eval?trace_id={body['id']}&limit=1", expect=200)
    assert page["has_more"] and page["next_cursor"]
    rest = await api.call("GET", f"/v1/eval?trace_id={body['id']}&limit=1&cursor={page['next_cursor']}", expect=200)
    assert {page["evaluations"][0]["id"], rest["evaluations"][0]["id"]} == {accepted["eval_id"], failing["eval_id"]}

    detail = await api.call("GET", f"/v1/traces/{body['id']}", expect=200)
    TraceDetail.model_validate(detail)
    assert {e["metric_name"] for e in detail["evaluations"]} == {"json_valid", "latency_threshold"}

    trends = await api.call("GET", "/v1/eval/trends?interval=hour", expect=200)
    EvalTrends.model_validate(trends)
    by_metric = {s["metric_name"]: s["points"] for s in trends["series"]}
    assert by_metric["json_valid"][-1]["avg_score"] == 1.0 and by_metric["latency_threshold"][-1]["pass_rate"] == 0.0


async def test_eval_request_errors(api: Api) -> None:
    body = await api.stored_trace()
    unknown_trace = await api.call(
        "POST", "/v1/eval", {"trace_id": "nope", "evaluator_type": "rule", "metric_name": "json_valid"}, expect=404
    )
    assert unknown_trace["code"] == "not_found"
    unknown_metric = await api.call(
        "POST", "/v1/eval", {"trace_id": body["id"], "evaluator_type": "rule", "metric_name": "vibes"}, expect=400
    )
    assert unknown_metric["code"] == "unknown_metric" and unknown_metric["catalog"] == "/v1/eval-catalog"
    assert "/v1/eval-catalog" in unknown_metric["error"]
    wrong_type = await api.call(
        "POST", "/v1/eval", {"trace_id": body["id"], "evaluator_type": "llm", "metric_name": "json_valid"}, expect=400
    )
    assert wrong_type["details"][0]["field"] == "evaluator_type"
    bad_config = await api.call(
        "POST",
        "/v1/eval",
        {
            "trace_id": body["id"],
            "evaluator_type": "rule",
            "metric_name": "regex_match",
            "config": {"pattern": "(a)\\1"},
        },
        expect=400,
    )
    assert bad_config["details"][0]["field"] == "config.pattern"
    typo = await api.call(
        "POST",
        "/v1/eval",
        {"trace_id": body["id"], "evaluator_type": "rule", "metric_name": "contains", "config": {"value": ["x"]}},
        expect=400,
    )
    assert typo["details"][0]["field"].startswith("config.")
    await api.call(
        "POST", "/v1/eval", {"trace_id": body["id"], "evaluator_type": "judge", "metric_name": "x"}, expect=400
    )
    await api.call("POST", "/v1/eval", {"evaluator_type": "rule", "metric_name": "json_valid"}, expect=422)
    await api.call("GET", "/v1/eval/does-not-exist", expect=404)
    await api.call("GET", "/v1/eval?score_min=2", expect=400)
    await api.call("GET", "/v1/eval?status=done", expect=400)
    await api.call("GET", "/v1/eval/trends?interval=minute&from=2020-01-01T00:00:00Z", expect=400)


async def test_catalog(api: Api) -> None:
    catalog = await api.call("GET", "/v1/eval-catalog", expect=200)
    EvalCatalog.model_validate(catalog)
    by_name = {e["name"]: e for e in catalog["evaluators"]}
    assert sum(e["evaluator_type"] == "rule" for e in catalog["evaluators"]) >= 8
    assert sum(e["evaluator_type"] == "llm" for e in catalog["evaluators"]) >= 6
    assert by_name["regex_match"]["config_schema"]["required"] == ["pattern"]


async def test_monthly_eval_quota(harness: Harness, api: Api) -> None:
    starter = await harness.new_tenant("starter")
    state = harness.gateway_app[config_state]  # the gateway's view is what enforces the quota
    limited = state.tenants[starter.id].model_copy(update={"limits": TenantLimits(monthly_evals=2)})
    await harness.writer.append(limited)

    async def applied() -> bool:
        return state.tenants[starter.id].limits is not None

    await eventually(applied)
    other = Api(harness, api.http, starter)
    body = await other.stored_trace()
    request = {"trace_id": body["id"], "evaluator_type": "rule", "metric_name": "json_valid"}
    for _ in range(2):
        await other.call("POST", "/v1/eval", request, expect=202)
    refused = await other.call("POST", "/v1/eval", request, expect=402)
    assert refused["code"] == "eval_quota_exceeded" and refused["limit"] == 2


async def test_tenant_isolation(api: Api, harness: Harness) -> None:
    body = await api.stored_trace(output="{}")
    accepted = await api.call(
        "POST", "/v1/eval", {"trace_id": body["id"], "evaluator_type": "rule", "metric_name": "json_valid"}, expect=202
    )
    await api.evaluation(accepted["eval_id"])
    await api.call("POST", "/v1/feedback", {"trace_id": body["id"], "label": "good"}, expect=201)
    other = Api(harness, api.http, await harness.new_tenant())
    await other.call("POST", "/v1/feedback", {"trace_id": body["id"], "label": "bad"}, expect=404)
    await other.call(
        "POST", "/v1/eval", {"trace_id": body["id"], "evaluator_type": "rule", "metric_name": "json_valid"}, expect=404
    )
    await other.call("GET", f"/v1/eval/{accepted['eval_id']}", expect=404)
    listed = await other.call("GET", f"/v1/eval?trace_id={body['id']}", expect=200)
    assert listed["evaluations"] == []
    await other.call("GET", f"/v1/traces/{body['id']}", expect=404)
    trends = await other.call("GET", "/v1/eval/trends", expect=200)
    assert trends["series"] == []
