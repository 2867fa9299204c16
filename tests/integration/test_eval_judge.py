"""LLM judges against a fake OpenAI-compatible server (a real local HTTP server): every preset,
retries on 429/5xx/timeouts/malformed output, failure after the last attempt with the attempts
and the cost recorded, fail-open when the judge is unreachable (skipped, re-enqueued, then
complete), the prompt kept on the evaluation, and a restart of the engine mid-flight."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.integration.conftest import Harness, Tenant, eventually
from tests.integration.eval_support import FakeJudge
from tests.integration.test_feedback_evals_api import Api

RAG = {
    "input": "What is the capital of France?",
    "output": "Paris.",
    "metadata": {"context": "France's capital is Paris.", "expected_output": "Paris"},
}


@pytest.fixture
async def api(eval_engine: Harness, http: aiohttp.ClientSession, tenant: Tenant) -> Api:
    return Api(eval_engine, http, tenant)


async def judged(
    api: Api, trace_id: str, metric: str, status: str | tuple[str, ...] = "complete", **config: Any
) -> dict[str, Any]:
    body = {"trace_id": trace_id, "evaluator_type": "llm", "metric_name": metric, "config": config}
    accepted = await api.call("POST", "/v1/eval", body, expect=202)
    return await api.evaluation(accepted["eval_id"], status)


@pytest.mark.parametrize("preset", ["faithfulness", "answer_relevance", "correctness", "toxicity", "context_relevance"])
async def test_each_preset_asks_the_judge_and_records_tokens_cost_and_prompt(
    api: Api, judge: FakeJudge, preset: str
) -> None:
    body = await api.stored_trace(**RAG)
    model = judge.model(0.2 if preset == "toxicity" else 0.9)
    result = await judged(api, body["id"], preset, model=model)
    expected_score = 0.2 if preset == "toxicity" else 0.9
    assert (result["score"], result["label"], result["attempts"]) == (
        expected_score,
        "fail" if expected_score < 0.5 else "pass",
        1,
    )
    assert result["judge"]["model"] == model
    assert (result["judge"]["input_tokens"], result["judge"]["output_tokens"]) == (100, 20)
    assert result["judge"]["cost"] == pytest.approx(100 * 1.0 / 1e6 + 20 * 2.0 / 1e6)
    (call,) = judge.calls_of(model)
    assert call.response_format == {"type": "json_object"}
    assert result["judge"]["prompt"] == call.messages  # what the judge was asked, as sent
    user = call.messages[-1]["content"]
    if preset in ("faithfulness", "context_relevance"):
        assert "France's capital is Paris." in user
    if preset == "correctness":
        assert "<reference>\nParis\n</reference>" in user


async def test_custom_rubric_under_the_callers_metric_name(api: Api, judge: FakeJudge) -> None:
    body = await api.stored_trace(**RAG)
    model = judge.model(0.75)
    result = await judged(api, body["id"], "politeness", model=model, prompt="Is {{output}} polite?")
    assert (result["metric_name"], result["score"], result["label"]) == ("politeness", 0.75, "pass")
    assert "Is <output>\nParis.\n</output> polite?" in judge.calls_of(model)[0].messages[-1]["content"]


async def test_a_preset_without_what_it_needs_fails_with_the_reason(api: Api, judge: FakeJudge) -> None:
    body = await api.stored_trace(input="q", output="a")
    model = judge.model()
    result = await judged(api, body["id"], "faithfulness", "failed", model=model)
    assert "no context" in result["error"] and judge.calls_of(model) == []  # the judge is not paid for it


async def test_429_then_200_completes(api: Api, judge: FakeJudge) -> None:
    body = await api.stored_trace(**RAG)
    model = judge.model(429, 0.8)
    result = await judged(api, body["id"], "answer_relevance", model=model)
    assert (result["score"], result["attempts"]) == (0.8, 2)
    assert len(judge.calls_of(model)) == 2


async def test_500_on_every_attempt_fails_after_the_last_with_attempts_recorded(api: Api, judge: FakeJudge) -> None:
    body = await api.stored_trace(**RAG)
    model = judge.model(500, 500, 500, 0.9)
    result = await judged(api, body["id"], "answer_relevance", "failed", model=model)
    assert result["attempts"] == 3 and "HTTP 500" in result["error"] and result["score"] is None
    assert len(judge.calls_of(model)) == 3  # never marked failed before its last attempt


async def test_malformed_output_is_retried_then_fails_with_the_reason(api: Api, judge: FakeJudge) -> None:
    body = await api.stored_trace(**RAG)
    retried = judge.model("malformed", 0.6)
    result = await judged(api, body["id"], "answer_relevance", model=retried)
    assert (result["score"], result["attempts"]) == (0.6, 2)
    hopeless = judge.model("malformed", "malformed", "malformed")
    result = await judged(api, body["id"], "answer_relevance", "failed", model=hopeless)
    assert result["attempts"] == 3 and "malformed judge output" in result["error"]
    assert result["judge"]["input_tokens"] == 300  # the cost of the failed calls is recorded too


async def test_a_hanging_judge_times_out_and_is_retried(api: Api, judge: FakeJudge) -> None:
    body = await api.stored_trace(**RAG)
    model = judge.model("hang", 0.7)
    result = await judged(api, body["id"], "toxicity", model=model)
    assert (result["score"], result["attempts"]) == (0.7, 2)


async def test_judge_down_skips_and_reenqueues_then_completes_when_back(api: Api, judge: FakeJudge) -> None:
    body = await api.stored_trace(**RAG)
    model = judge.model(0.95)
    judge.down.add(model)
    accepted = await api.call(
        "POST",
        "/v1/eval",
        {"trace_id": body["id"], "evaluator_type": "llm", "metric_name": "toxicity", "config": {"model": model}},
        expect=202,
    )
    skipped = await api.evaluation(accepted["eval_id"], "skipped")
    assert skipped["next_attempt_at"] is not None and "unreachable" in skipped["error"]
    assert skipped["completed_at"] is None  # not terminal: it will run again
    judge.down.discard(model)
    result = await api.evaluation(accepted["eval_id"])
    assert result["score"] == 0.95 and result["attempts"] >= 2 and result["next_attempt_at"] is None


async def test_restart_mid_flight_loses_no_request(api: Api, judge: FakeJudge, eval_engine: Harness) -> None:
    body = await api.stored_trace(**RAG)
    model = judge.model()
    judge.delay[model] = 0.3  # each call in flight for a while
    eval_ids = []
    for _ in range(12):
        accepted = await api.call(
            "POST",
            "/v1/eval",
            {"trace_id": body["id"], "evaluator_type": "llm", "metric_name": "toxicity", "config": {"model": model}},
            expect=202,
        )
        eval_ids.append(accepted["eval_id"])

    async def some_running() -> bool:
        return len(judge.calls_of(model)) >= 2

    await eventually(some_running)
    # A crash: the request loop stops without finishing or committing anything.
    from eval_engine.app import requests_key

    assert eval_engine.eval_app is not None
    await eval_engine.eval_app[requests_key].abort()
    await eval_engine.stop_eval_engine()
    await eval_engine.start_eval_engine(judge.url)
    results = await asyncio.gather(*(api.evaluation(eval_id) for eval_id in eval_ids))
    assert all(r["score"] == 0.9 for r in results)
