"""The SDK's OpenAI instrumentation with the real ``openai`` package against a fake
OpenAI-compatible server this test starts, recording into the real stack: sync and async,
streaming, errors, cost, and the policy's decide() applied before the call.

The policy client is an in-test stand-in with the interface of ``trulayer_sdk``'s
``PolicyClient`` (``decide(model, project_id, metadata, request_key) -> Decision``); the real
one is built by the control-plane work.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web

from tests.integration.conftest import Harness, Tenant, eventually, free_port
from trulayer_common.schemas.responses import TraceDetail, TraceList
from trulayer_sdk import PolicyBlockedError, TruLayerClient, cost_of, instrument_openai, uninstrument_openai


@dataclass
class FakeOpenAI:
    url: str
    requests: list[dict[str, Any]]


def _completion(model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": f"{model}-2024-08-06",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
    }


def _chunk(model: str, content: str | None, usage: dict[str, int] | None = None) -> bytes:
    body: dict[str, Any] = {
        "id": "chatcmpl-2",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [] if content is None else [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
    }
    if usage is not None:
        body["usage"] = usage
    return b"data: " + json.dumps(body).encode() + b"\n\n"


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    requests: list[dict[str, Any]] = []

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        requests.append(body)
        model = body["model"]
        if model == "fail-model":
            return web.json_response({"error": {"message": "upstream exploded", "type": "server_error"}}, status=500)
        if not body.get("stream"):
            return web.json_response(_completion(model))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for part in ("Hel", "lo", " world"):
            await response.write(_chunk(model, part))
        if (body.get("stream_options") or {}).get("include_usage"):
            await response.write(_chunk(model, None, {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}))
        await response.write(b"data: [DONE]\n\n")
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield FakeOpenAI(f"http://127.0.0.1:{port}/v1", requests)
    await runner.cleanup()


@dataclass
class Decision:
    decision: str
    target_model: str | None = None
    rule_id: str | None = None
    reason: str | None = None
    dry_run: bool = False


class StandInPolicy:
    """``decide()`` as the SDK's PolicyClient answers it, from a fixed table of models."""

    def __init__(self, table: dict[str, Decision]) -> None:
        self.table = table
        self.calls: list[tuple[str, str | None, str | None]] = []

    def decide(
        self,
        model: str,
        project_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        request_key: str | None = None,
    ) -> Decision:
        self.calls.append((model, project_id, request_key))
        return self.table.get(model, Decision("allow"))


@pytest.fixture
async def tl(harness: Harness, tenant: Tenant) -> AsyncIterator[TruLayerClient]:
    client = TruLayerClient(
        api_key=tenant.key, project_name="default", endpoint=harness.gateway_url, flush_interval=0.1
    )
    instrument_openai(client)
    yield client
    uninstrument_openai()
    await asyncio.to_thread(client.shutdown, 1)


async def only_trace(http: aiohttp.ClientSession, harness: Harness, tenant: Tenant, count: int = 1) -> list[Any]:
    async def found() -> list[Any]:
        async with http.get(f"{harness.gateway_url}/v1/traces", headers=tenant.headers) as resp:
            traces = TraceList.model_validate(await resp.json()).traces
        if len(traces) < count:
            return []
        details = []
        for t in traces:
            async with http.get(f"{harness.gateway_url}/v1/traces/{t.id}", headers=tenant.headers) as resp:
                details.append(TraceDetail.model_validate(await resp.json()).model_dump())
        return details

    return list(await eventually(found))


def sync_openai(fake: FakeOpenAI) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.url, api_key="sk-test", max_retries=0)


async def test_sync_call_in_a_trace_is_an_llm_span_with_tokens_cost_and_latency(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant, tl: TruLayerClient, fake_openai: FakeOpenAI
) -> None:
    def app() -> str:
        client = sync_openai(fake_openai)
        with tl.trace("geo-question") as t:
            answer = client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "Capital of France?"}]
            )
            t.set_output(answer.choices[0].message.content)
        tl.flush(10)
        return str(answer.choices[0].message.content)

    assert await asyncio.to_thread(app) == "Paris."  # the application sees the real answer
    (trace,) = await only_trace(http, harness, tenant)
    (span,) = trace["spans"]
    assert (trace["name"], span["name"], span["type"]) == ("geo-question", "openai.chat.completions", "llm")
    assert span["model"] == trace["model"] == "gpt-4o-2024-08-06"
    assert (span["prompt_tokens"], span["completion_tokens"]) == (11, 3)
    assert span["cost"] == pytest.approx(cost_of("gpt-4o", 11, 3)) and trace["cost"] == pytest.approx(span["cost"])
    assert span["input"] == [{"role": "user", "content": "Capital of France?"}] and span["output"] == "Paris."
    assert span["latency_ms"] > 0 and span["error"] is None
    assert span["metadata"]["provider"] == "openai"


async def test_async_stream_outside_a_trace_is_a_trace_of_its_own(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant, tl: TruLayerClient, fake_openai: FakeOpenAI
) -> None:
    client = openai.AsyncOpenAI(base_url=fake_openai.url, api_key="sk-test", max_retries=0)
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "greet"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Hello world"
    await asyncio.to_thread(tl.flush, 10)
    (trace,) = await only_trace(http, harness, tenant)
    assert (trace["name"], trace["output"], trace["model"]) == ("openai.chat.completions", "Hello world", "gpt-4o-mini")
    (span,) = trace["spans"]
    assert (span["prompt_tokens"], span["completion_tokens"]) == (7, 3)
    assert span["cost"] == pytest.approx(cost_of("gpt-4o-mini", 7, 3))
    assert span["metadata"]["stream"] is True
    await client.close()


async def test_sync_stream_left_early_and_failed_call(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant, tl: TruLayerClient, fake_openai: FakeOpenAI
) -> None:
    def app() -> None:
        client = sync_openai(fake_openai)
        with tl.trace("stream-then-fail"):
            with client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "x"}], stream=True
            ) as stream:
                for chunk in stream:
                    assert chunk.choices[0].delta.content == "Hel"
                    break  # the application stops reading; leaving the block closes the stream
            with pytest.raises(openai.InternalServerError):
                client.chat.completions.create(model="fail-model", messages=[{"role": "user", "content": "x"}])
        tl.flush(10)

    await asyncio.to_thread(app)
    (trace,) = await only_trace(http, harness, tenant)
    streamed, failed = sorted(trace["spans"], key=lambda s: s["error"] is not None)
    assert streamed["output"] == "Hel" and streamed["prompt_tokens"] == 0  # no usage was asked for
    assert streamed["cost"] is None
    assert failed["error"].startswith("InternalServerError:") and "upstream exploded" in failed["error"]
    assert trace["error"] is None  # the application handled the failure; its trace did not fail


async def test_policy_blocks_routes_and_dry_runs_before_the_call(
    http: aiohttp.ClientSession, harness: Harness, tenant: Tenant, tl: TruLayerClient, fake_openai: FakeOpenAI
) -> None:
    tl.policy = StandInPolicy(
        {
            "gpt-4": Decision("route", target_model="gpt-4o-mini", rule_id="r-route", reason="cheaper"),
            "blocked": Decision("block", rule_id="r-kill", reason="kill-switch active"),
            "watched": Decision("block", rule_id="r-dry", reason="would block", dry_run=True),
        }
    )

    def app() -> str:
        client = sync_openai(fake_openai)
        with tl.trace("policies") as t:
            client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "a"}])
            with pytest.raises(PolicyBlockedError) as blocked:
                client.chat.completions.create(model="blocked", messages=[{"role": "user", "content": "b"}])
            assert blocked.value.decision.rule_id == "r-kill"
            client.chat.completions.create(model="watched", messages=[{"role": "user", "content": "c"}])
        tl.flush(10)
        return t.id

    trace_id = await asyncio.to_thread(app)
    # The routed call reached the server with the target model; the blocked one never did.
    assert [r["model"] for r in fake_openai.requests] == ["gpt-4o-mini", "watched"]
    assert tl.policy.calls == [  # type: ignore[union-attr]
        ("gpt-4", "default", trace_id),
        ("blocked", "default", trace_id),
        ("watched", "default", trace_id),
    ]
    (trace,) = await only_trace(http, harness, tenant)
    spans = {s["metadata"]["policy_rule_id"]: s for s in trace["spans"]}
    assert spans["r-route"]["metadata"]["requested_model"] == "gpt-4"
    assert spans["r-route"]["model"] == "gpt-4o-mini-2024-08-06"
    assert spans["r-kill"]["error"].startswith("PolicyBlockedError: kill-switch active")
    assert spans["r-dry"]["metadata"]["policy_dry_run"] is True and spans["r-dry"]["error"] is None
