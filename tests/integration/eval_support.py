"""Test support for the eval tests: a fake OpenAI-compatible judge (a real local HTTP server) and
small API helpers.

The judge answers ``POST /v1/chat/completions`` by the request's ``model``: each test scripts its
own model name with the answers it wants, in turn (then the default: score 0.9). Actions:
an int (that HTTP status), ``"hang"`` (answer after the engine's per-call timeout),
``"malformed"`` (200 with text that is not JSON), ``"drop"`` (close the connection: the judge
is unreachable), a ``float`` (that score). ``down`` models drop every call until taken out.
Every call is recorded with its messages, so tests see what the judge was asked.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.integration.conftest import free_port

Action = int | float | str


@dataclass
class Call:
    model: str
    messages: list[dict[str, str]]
    response_format: Any


@dataclass
class FakeJudge:
    url: str = ""
    scripts: dict[str, list[Action]] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)
    delay: dict[str, float] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    def model(self, *script: Action) -> str:
        """A fresh model name answering ``script`` in turn."""
        name = f"judge-{uuid.uuid4().hex[:8]}"
        self.scripts[name] = list(script)
        return name

    def calls_of(self, model: str) -> list[Call]:
        return [c for c in self.calls if c.model == model]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/v1"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        model = body["model"]
        self.calls.append(Call(model, body["messages"], body.get("response_format")))
        if model in self.down:
            return self._drop(request)
        if model in self.delay:
            await asyncio.sleep(self.delay[model])
        script = self.scripts.get(model)
        action: Action = script.pop(0) if script else 0.9
        if action == "drop":
            return self._drop(request)
        if action == "hang":
            await asyncio.sleep(2.0)
            action = 0.9
        if isinstance(action, int) and not isinstance(action, bool) and action >= 100:
            return web.json_response({"error": {"message": "scripted"}}, status=action)
        content = (
            "this is not JSON"
            if action == "malformed"
            else orjson.dumps(
                {"score": float(action), "label": "pass" if float(action) >= 0.5 else "fail", "reasoning": "scripted"}
            ).decode()
        )
        return web.json_response(
            {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "model": model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
            }
        )

    @staticmethod
    def _drop(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        return web.Response(status=500)
