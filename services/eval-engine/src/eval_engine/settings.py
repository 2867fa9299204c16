"""Eval-engine settings (environment only)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from trulayer_common.config import PlanCatalog
from trulayer_common.settings import ServiceSettings


class EvalEngineSettings(ServiceSettings):
    # Nested settings from the environment: PLANS__STARTER__MONTHLY_EVALS=5000.
    model_config = SettingsConfigDict(env_nested_delimiter="__")

    service_name: str = "eval-engine"
    eval_engine_host: str = "127.0.0.1"
    eval_engine_port: int = 8084
    eval_group_id: str = Field(default="trulayer-eval-engine", description="consumer group of eval requests")
    eval_rules_group_id: str = Field(
        default="trulayer-eval-engine-rules", description="consumer group reading trulayer.traces for eval rules"
    )

    # The judge: any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, LiteLLM).
    judge_base_url: str | None = Field(
        default=None, description="e.g. https://api.openai.com/v1 (POST {base}/chat/completions); unset: LLM evals fail"
    )
    judge_api_key: SecretStr | None = Field(default=None, description="sent as 'Authorization: Bearer'")
    judge_model: str = "gpt-4o-mini"
    judge_json_mode: bool = Field(default=True, description="ask for response_format json_object")
    judge_timeout_seconds: float = Field(default=30.0, gt=0, description="per call")
    judge_max_attempts: int = Field(default=3, ge=1, le=10, description="calls per run on 429/5xx/timeouts/bad output")
    judge_backoff_base_seconds: float = Field(default=1.0, ge=0)
    judge_backoff_max_seconds: float = Field(default=20.0, ge=0)
    judge_max_field_chars: int = Field(
        default=8000, ge=100, description="each trace text sent to the judge is cut here"
    )
    judge_input_cost_per_mtok: float = Field(default=0.0, ge=0, description="USD per million input tokens")
    judge_output_cost_per_mtok: float = Field(default=0.0, ge=0, description="USD per million output tokens")

    # Fail-open retries of an unreachable judge: skipped, re-enqueued with backoff until max age.
    eval_retry_base_seconds: float = Field(default=30.0, gt=0)
    eval_retry_max_seconds: float = Field(default=600.0, gt=0)
    eval_max_age_seconds: float = Field(default=24 * 3600.0, gt=0, description="after this an evaluation gives up")
    trace_wait_seconds: float = Field(
        default=60.0, gt=0, description="how long a rule's evaluation waits for its trace to be stored"
    )

    # Concurrency and memory bounds of the request runner.
    eval_concurrency: int = Field(default=32, ge=1, description="evaluations running at once, all tenants")
    eval_tenant_concurrency: int = Field(default=4, ge=1, description="evaluations running at once per tenant")
    eval_tenant_max_queued: int = Field(
        default=500, ge=1, description="due evaluations held per tenant before deferral"
    )
    eval_defer_seconds: float = Field(default=30.0, gt=0, description="a deferred evaluation comes back after this")
    eval_max_held: int = Field(default=20_000, ge=1, description="requests held in memory before fetching pauses")

    # The rule stream (trulayer.traces → evaluations).
    rules_batch_max: int = Field(default=5000, ge=1, description="evaluations per flush of the rule stream")
    rules_batch_wait_ms: int = Field(default=300, ge=1)
    dlq_max_per_minute: int = 1_000

    plans: PlanCatalog = PlanCatalog()
    limits_enabled: bool = Field(default=True, description="count rule evaluations against the plan's monthly_evals")
