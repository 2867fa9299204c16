"""Eval rules on the real stack: CRUD through the gateway (forwarded to the control-engine), the
starter cap race-free under concurrent creates, sampling with counters that add up, filters,
LLM rules through the request runner, and the alerter's eval_score metric on the results."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
import pytest

from eval_engine.rule_matcher import is_sampled
from tests.integration.alerting_support import receiver
from tests.integration.conftest import Harness, Tenant, eventually, trace
from tests.integration.eval_support import FakeJudge
from tests.integration.test_feedback_evals_api import Api
from trulayer_common.schemas.evals import EvalRuleList, EvalRuleOut


@pytest.fixture
async def api(eval_engine: Harness, http: aiohttp.ClientSession, tenant: Tenant) -> Api:
    return Api(eval_engine, http, tenant)


async def rule(api: Api, expect: int = 201, **fields: Any) -> dict[str, Any]:
    body = {"project_id": api.tenant.project_id, "evaluator_type": "rule", "metric_name": "json_valid", **fields}
    created: dict[str, Any] = await api.call("POST", "/v1/eval-rules", body, expect=expect)
    if expect == 201:
        EvalRuleOut.model_validate(created)
    return created


async def counters(api: Api, rule_id: str) -> dict[str, Any]:
    got = await api.call("GET", f"/v1/eval-rules/{rule_id}", expect=200)
    EvalRuleOut.model_validate(got)
    return dict(got["counters"])


async def test_crud_and_validation(api: Api) -> None:
    created = await rule(api, name="json", sample_rate=0.5, filter={"model": "gpt-4o", "tags": ["prod"]})
    assert created["counters"] == {
        "matched": 0,
        "sampled": 0,
        "evaluated": 0,
        "failed": 0,
        "skipped": 0,
        "last_evaluated_at": None,
    }
    listed = await api.call("GET", "/v1/eval-rules", expect=200)
    EvalRuleList.model_validate(listed)
    assert [r["id"] for r in listed["eval_rules"]] == [created["id"]]
    patched = await api.call(
        "PATCH", f"/v1/eval-rules/{created['id']}", {"enabled": False, "sample_rate": 1}, expect=200
    )
    assert (patched["enabled"], patched["sample_rate"], patched["filter"]["model"]) == (False, 1.0, "gpt-4o")
    await api.call("PATCH", f"/v1/eval-rules/{created['id']}", {"sample_rate": 1.5}, expect=400)
    await api.call("PATCH", f"/v1/eval-rules/{created['id']}", {"metric_name": None}, expect=400)
    unknown = await rule(api, 400, metric_name="vibes")
    assert unknown["code"] == "unknown_metric" and unknown["catalog"] == "/v1/eval-catalog"
    bad = await rule(api, 400, metric_name="regex_match", config={"pattern": "(?<=x)"})
    assert bad["details"][0]["field"] == "config.pattern"
    await rule(api, 400, project_id="no-such-project")
    await rule(api, 400, filter={"modle": "x"})
    await api.call("POST", "/v1/eval-rules", {"metric_name": "json_valid", "evaluator_type": "rule"}, expect=422)
    deleted = await api.call("DELETE", f"/v1/eval-rules/{created['id']}", expect=200)
    assert deleted["id"] == created["id"]
    await api.call("GET", f"/v1/eval-rules/{created['id']}", expect=404)


async def test_fourth_rule_on_starter_is_402_even_under_concurrent_creates(harness: Harness, api: Api) -> None:
    starter = Api(harness, api.http, await harness.new_tenant("starter"))
    body = {"project_id": starter.tenant.project_id, "evaluator_type": "rule", "metric_name": "json_valid"}

    async def create() -> int:
        async with starter.http.post(
            f"{harness.gateway_url}/v1/eval-rules", json=body, headers=starter.tenant.headers
        ) as resp:
            data = await resp.json()
            if resp.status == 402:
                assert data["code"] == "eval_rules_quota_exceeded"
            return resp.status

    statuses = await asyncio.gather(*(create() for _ in range(6)))
    assert sorted(statuses) == [201, 201, 201, 402, 402, 402]
    listed = await starter.call("GET", "/v1/eval-rules", expect=200)
    assert len(listed["eval_rules"]) == 3
    refused = await starter.call("POST", "/v1/eval-rules", body, expect=402)
    assert refused["code"] == "eval_rules_quota_exceeded" and refused["limit"] == 3


async def test_sample_rate_evaluates_about_a_tenth_and_the_counters_add_up(api: Api) -> None:
    created = await rule(api, sample_rate=0.1, filter={"model": "gpt-4o"})
    ids = [f"s-{uuid.uuid4().hex}" for _ in range(1000)]
    for start in range(0, len(ids), 100):
        batch = [
            trace(id=i, model="gpt-4o", output='{"ok": true}' if n % 2 else "not json")
            for n, i in enumerate(ids[start : start + 100])
        ]
        await api.call("POST", "/v1/ingest/batch", {"traces": batch}, expect=201)
    # Traces of another model do not match the filter.
    await api.call("POST", "/v1/ingest/batch", {"traces": [trace(model="claude") for _ in range(50)]}, expect=201)
    expected = sum(is_sampled(i, 0.1) for i in ids)
    assert 60 <= expected <= 140  # ≈10 % of 1000

    async def counted() -> dict[str, Any] | None:
        got = await counters(api, created["id"])
        return got if got["matched"] == 1000 and got["evaluated"] + got["failed"] == expected else None

    got = await eventually(counted, timeout=30)
    assert got["sampled"] == expected and got["skipped"] == 0 and got["last_evaluated_at"] is not None

    async def stored() -> list[dict[str, Any]] | None:
        rows = await api.harness.clickhouse.query(
            f"SELECT trace_id, status, score FROM {api.harness.clickhouse.database}.evaluations FINAL "
            "WHERE tenant_id = {t:String} AND rule_id = {r:String}",
            {"t": api.tenant.id, "r": created["id"]},
        )
        return rows if len(rows) == expected else None

    rows = await eventually(stored)
    assert {r["trace_id"] for r in rows} == {i for i in ids if is_sampled(i, 0.1)}
    assert all(r["status"] == "complete" for r in rows)


async def test_lower_rate_samples_a_subset_of_a_higher_one(api: Api) -> None:
    """The hash sampling decides per trace id: a 10 % rule's traces are among a 50 % rule's."""
    ids = [f"h-{uuid.uuid4().hex}" for _ in range(2000)]
    low = {i for i in ids if is_sampled(i, 0.1)}
    high = {i for i in ids if is_sampled(i, 0.5)}
    assert low <= high and 0 < len(low) < len(high) < len(ids)


async def test_llm_rule_runs_through_the_request_runner(api: Api, judge: FakeJudge) -> None:
    model = judge.model(0.3)
    created = await rule(api, evaluator_type="llm", metric_name="toxicity", config={"model": model})
    body = trace(output="you fool")
    await api.call("POST", "/v1/ingest", body, expect=201)

    async def evaluated() -> dict[str, Any] | None:
        got = await counters(api, created["id"])
        return got if got["evaluated"] == 1 else None

    got = await eventually(evaluated, timeout=30)
    assert (got["matched"], got["sampled"], got["failed"], got["skipped"]) == (1, 1, 0, 0)

    async def stored() -> list[dict[str, Any]]:
        listed = await api.call("GET", f"/v1/eval?trace_id={body['id']}&status=complete", expect=200)
        return list(listed["evaluations"])

    (evaluation,) = await eventually(stored)
    assert (evaluation["rule_id"], evaluation["score"], evaluation["label"]) == (created["id"], 0.3, "fail")


async def test_llm_rule_with_the_judge_down_counts_skipped_then_evaluated(api: Api, judge: FakeJudge) -> None:
    model = judge.model(0.9)
    judge.down.add(model)
    created = await rule(api, evaluator_type="llm", metric_name="toxicity", config={"model": model})
    await api.call("POST", "/v1/ingest", trace(output="hi"), expect=201)

    async def skipped() -> dict[str, Any] | None:
        got = await counters(api, created["id"])
        return got if got["skipped"] == 1 else None

    await eventually(skipped, timeout=30)
    judge.down.discard(model)

    async def evaluated() -> dict[str, Any] | None:
        got = await counters(api, created["id"])
        return got if got["evaluated"] == 1 else None

    got = await eventually(evaluated, timeout=30)
    assert got["skipped"] == 0 and got["sampled"] == 1


async def test_eval_score_alert_fires_on_rule_results(harness: Harness, api: Api) -> None:
    await harness.start_alerter()
    secret = "whsec-0123456789abcdef"
    listed = await api.call("GET", "/v1/alerts", expect=200)
    for existing in listed["rules"]:
        await api.call("DELETE", f"/v1/alerts/{existing['id']}", expect=200)
    async with receiver(secret) as hook:
        await api.call("POST", "/v1/webhooks", {"url": hook.url, "secret": secret}, expect=201)
        alert = await api.call(
            "POST",
            "/v1/alerts",
            {
                "name": "json broken",
                "metric": "eval_score",
                "metric_name": "json_valid",
                "operator": "lt",
                "threshold": 0.5,
                "window_secs": 60,
                "cooldown_minutes": 5,
            },
            expect=201,
        )
        await rule(api)
        await api.call("POST", "/v1/ingest/batch", {"traces": [trace(output="not json") for _ in range(5)]}, expect=201)

        async def fired() -> list[dict[str, Any]]:
            return [d.body["data"] for d in hook.deliveries if d.body["data"]["rule_id"] == alert["id"]]

        (event, *_) = await eventually(fired, timeout=60)
        assert event["metric"] == "eval_score" and event["metric_value"] == 0.0
        assert all(d.signature_ok for d in hook.deliveries)
