"""The LLM judge: one OpenAI-compatible ``POST {JUDGE_BASE_URL}/chat/completions`` per call.

:meth:`JudgeClient.judge` runs one evaluation's calls:

* every call has a timeout (``JUDGE_TIMEOUT_SECONDS``): a hung judge never holds a slot longer;
* 429, 5xx, timeouts and answers that are not the JSON asked for are retried with exponential
  backoff (``Retry-After`` honoured, capped) up to ``JUDGE_MAX_ATTEMPTS`` calls;
* the outcome, with the calls made and the tokens and cost of all of them:
  :class:`JudgeAnswer` (a verdict), :class:`JudgeUnreachableError` (connection refused, or still
  429/timing out after the last call: the evaluation is ``skipped`` and re-enqueued) or
  :class:`JudgeFailedError` (5xx or malformed output after the last call, or a 4xx: ``failed``
  with the reason).

Token counts come from the answer's ``usage``; cost = tokens × the configured prices.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiohttp
import orjson

from eval_engine.evaluators.judges import MalformedJudgeOutputError, parse_answer
from eval_engine.evaluators.verdict import Verdict
from eval_engine.settings import EvalEngineSettings
from trulayer_common.logging import get_logger

log = get_logger(__name__)
MAX_ANSWER_BYTES = 1024 * 1024


@dataclass
class Usage:
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    model: str = ""


@dataclass(frozen=True)
class JudgeAnswer:
    verdict: Verdict
    usage: Usage


@dataclass
class JudgeError(Exception):
    reason: str
    usage: Usage = field(default_factory=Usage)

    def __str__(self) -> str:
        return self.reason


class JudgeUnreachableError(JudgeError):
    """The judge could not be reached (or kept refusing with 429 / timing out): try later."""


class JudgeFailedError(JudgeError):
    """The judge answered, but not usefully, on every attempt: the evaluation fails."""


class _Retry(Exception):
    def __init__(self, reason: str, unreachable: bool, delay: float | None = None) -> None:
        super().__init__(reason)
        self.reason, self.unreachable, self.delay = reason, unreachable, delay


class JudgeClient:
    def __init__(self, settings: EvalEngineSettings, session: aiohttp.ClientSession) -> None:
        self._settings = settings
        self._session = session

    @property
    def configured(self) -> bool:
        return bool(self._settings.judge_base_url)

    def _backoff(self, attempt: int) -> float:
        s = self._settings
        return float(min(s.judge_backoff_base_seconds * 2 ** (attempt - 1), s.judge_backoff_max_seconds))

    async def judge(self, messages: list[dict[str, str]], model: str | None, threshold: float) -> JudgeAnswer:
        s = self._settings
        usage = Usage(model=model or s.judge_model)
        last: _Retry | None = None
        for attempt in range(1, s.judge_max_attempts + 1):
            if last is not None:
                await asyncio.sleep(last.delay if last.delay is not None else self._backoff(attempt - 1))
            usage.calls += 1
            try:
                return JudgeAnswer(await self._call(messages, usage, threshold), usage)
            except _Retry as retry:
                log.info("judge_retry", attempt=attempt, reason=retry.reason)
                last = retry
        assert last is not None
        reason = f"{last.reason} (after {usage.calls} calls)"
        raise (JudgeUnreachableError if last.unreachable else JudgeFailedError)(reason, usage)

    async def _call(self, messages: list[dict[str, str]], usage: Usage, threshold: float) -> Verdict:
        s = self._settings
        body: dict[str, object] = {"model": usage.model, "messages": messages, "temperature": 0}
        if s.judge_json_mode:
            body["response_format"] = {"type": "json_object"}
        headers = {"Content-Type": "application/json"}
        if s.judge_api_key is not None:
            headers["Authorization"] = f"Bearer {s.judge_api_key.get_secret_value()}"
        url = f"{(s.judge_base_url or '').rstrip('/')}/chat/completions"
        try:
            async with self._session.post(
                url,
                data=orjson.dumps(body),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=s.judge_timeout_seconds),
                allow_redirects=False,
            ) as resp:
                raw = await resp.content.read(MAX_ANSWER_BYTES)
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
        except TimeoutError:
            raise _Retry(f"the judge did not answer within {s.judge_timeout_seconds:g} s", unreachable=True) from None
        except aiohttp.ClientConnectionError as exc:
            raise JudgeUnreachableError(f"the judge is unreachable: {type(exc).__name__}", usage) from None
        if status == 429:
            raise _Retry(
                "the judge answered 429 (rate limited)", unreachable=True, delay=self._retry_after(retry_after)
            )
        if status >= 500:
            raise _Retry(f"the judge answered HTTP {status}", unreachable=False)
        if status != 200:
            raise JudgeFailedError(f"the judge answered HTTP {status}: {raw[:200].decode(errors='replace')}", usage)
        try:
            answer = orjson.loads(raw)
            usage_block = answer.get("usage") or {}
            usage.input_tokens += int(usage_block.get("prompt_tokens") or 0)
            usage.output_tokens += int(usage_block.get("completion_tokens") or 0)
            usage.cost = round(
                usage.input_tokens * s.judge_input_cost_per_mtok / 1e6
                + usage.output_tokens * s.judge_output_cost_per_mtok / 1e6,
                8,
            )
            content = answer["choices"][0]["message"]["content"]
            if not isinstance(content, str):
                raise TypeError("content is not text")
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
            raise _Retry(f"the judge's answer is not a chat completion: {exc}"[:300], unreachable=False) from None
        try:
            return parse_answer(content, threshold)
        except MalformedJudgeOutputError as exc:
            raise _Retry(f"malformed judge output: {exc}", unreachable=False) from None

    def _retry_after(self, header: str | None) -> float | None:
        try:
            seconds = float(header) if header is not None else None
        except ValueError:
            return None
        return None if seconds is None else min(max(seconds, 0.0), self._settings.judge_backoff_max_seconds)
