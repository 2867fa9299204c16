"""The evaluator catalog (``GET /v1/eval-catalog``) and the resolution of a requested metric.

Every built-in evaluator is listed once here with its configuration model; the eval-engine
binds an implementation to each name (and refuses to start when one is missing). A request
names a metric: a catalog name, or, with ``evaluator_type: llm`` and ``config.prompt``, a metric
of the caller's own judged by the custom rubric. :func:`resolve` turns a request into a
:class:`Resolved` evaluator or raises :class:`UnknownMetricError` / :class:`InvalidConfigError`,
whose messages name the catalog and the field.

Scores are 0..1 and 1 is always the good end (no PII found, not toxic, faithful, ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from trulayer_common.evals import configs as c

EvaluatorType = Literal["llm", "rule"]
CostTier = Literal["free", "low", "medium"]
CATALOG_PATH = "/v1/eval-catalog"
CUSTOM_RUBRIC = "custom_rubric"
METRIC_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    description: str
    evaluator_type: EvaluatorType
    config_model: type[c.EvaluatorConfig]
    tags: tuple[str, ...]
    cost_tier: CostTier
    example_input: dict[str, Any] = field(default_factory=dict)
    example_output: dict[str, Any] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "evaluator_type": self.evaluator_type,
            "tags": list(self.tags),
            "cost_tier": self.cost_tier,
            "config_schema": self.config_model.model_json_schema(by_alias=True),
            "example_input": self.example_input,
            "example_output": self.example_output,
        }


def _rule(
    name: str,
    description: str,
    config: type[c.EvaluatorConfig],
    tags: tuple[str, ...],
    trace: dict[str, Any],
    cfg: dict[str, Any],
    score: float,
    label: str,
) -> CatalogEntry:
    return CatalogEntry(
        name,
        description,
        "rule",
        config,
        tags,
        "free",
        {"trace": trace, "config": cfg},
        {"score": score, "label": label},
    )


def _judge(
    name: str, description: str, tags: tuple[str, ...], trace: dict[str, Any], score: float, reasoning: str
) -> CatalogEntry:
    config: type[c.EvaluatorConfig] = c.CustomRubricConfig if name == CUSTOM_RUBRIC else c.JudgeConfig
    cfg = (
        {"prompt": "Score 1 when the answer is polite and helpful, 0 when it is rude."} if name == CUSTOM_RUBRIC else {}
    )
    return CatalogEntry(
        name,
        description,
        "llm",
        config,
        tags,
        "low" if name == "toxicity" else "medium",
        {"trace": trace, "config": cfg},
        {"score": score, "label": "pass" if score >= 0.5 else "fail", "reasoning": reasoning},
    )


_QA = {"input": "What is the capital of France?", "output": "Paris is the capital of France."}
_RAG = {**_QA, "metadata": {"context": "France is a country in Europe. Its capital is Paris."}}

CATALOG: tuple[CatalogEntry, ...] = (
    _rule(
        "json_valid",
        "The text parses as JSON.",
        c.JsonValidConfig,
        ("format", "json"),
        {"output": '{"answer": 42}'},
        {},
        1.0,
        "pass",
    ),
    _rule(
        "json_schema",
        "The text is JSON conforming to config.schema (JSON Schema; no remote $ref).",
        c.JsonSchemaConfig,
        ("format", "json", "schema"),
        {"output": '{"answer": "42"}'},
        {"schema": {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "integer"}}}},
        0.0,
        "fail",
    ),
    _rule(
        "regex_match",
        "The text matches config.pattern (RE2 syntax), or does not with expect=no_match.",
        c.RegexMatchConfig,
        ("format", "pattern"),
        {"output": "Order #A-1234 confirmed"},
        {"pattern": r"#[A-Z]-\d{4}"},
        1.0,
        "pass",
    ),
    _rule(
        "contains",
        "The text contains any (mode=any) or all (mode=all) of config.values.",
        c.ContainsConfig,
        ("content",),
        {"output": "Your refund was issued."},
        {"values": ["refund", "credit"], "mode": "any"},
        1.0,
        "pass",
    ),
    _rule(
        "not_contains",
        "The text contains none of config.values (banned words, internal names).",
        c.NotContainsConfig,
        ("content", "safety"),
        {"output": "Ask our internal tool ACME-ADMIN."},
        {"values": ["acme-admin"]},
        0.0,
        "fail",
    ),
    _rule(
        "exact_match",
        "The text equals the expected value (config.expected, else the trace's metadata[expected_key]).",
        c.ExactMatchConfig,
        ("correctness", "reference"),
        {"output": " Paris ", "metadata": {"expected_output": "paris"}},
        {},
        1.0,
        "pass",
    ),
    _rule(
        "levenshtein_ratio",
        "Similarity (normalised Levenshtein, 0..1) of the text to the expected value; pass at config.threshold.",
        c.LevenshteinRatioConfig,
        ("correctness", "reference", "similarity"),
        {"output": "The capital is Paris", "metadata": {"expected_output": "The capital is Paris."}},
        {"threshold": 0.8},
        0.9524,
        "pass",
    ),
    _rule(
        "latency_threshold",
        "The trace's latency_ms is at most config.max_ms; the score falls as max_ms / latency_ms beyond it.",
        c.LatencyThresholdConfig,
        ("performance",),
        {"latency_ms": 2000},
        {"max_ms": 1000},
        0.5,
        "fail",
    ),
    _rule(
        "output_length",
        "The text's length (chars or words) is within config.min..config.max.",
        c.OutputLengthConfig,
        ("format",),
        {"output": "Short answer."},
        {"min": 1, "max": 5, "unit": "words"},
        1.0,
        "pass",
    ),
    _rule(
        "pii_leakage",
        "No personal data in the text: e-mail addresses, phone numbers, card numbers (Luhn-checked), national "
        "ids (US SSN, UK NINO, FR NIR, ES DNI, IT codice fiscale), IBANs (checksum). Score 1: none found.",
        c.PiiLeakageConfig,
        ("safety", "privacy"),
        {"output": "Contact jane.doe@example.com or card 4111 1111 1111 1111."},
        {},
        0.0,
        "fail",
    ),
    _rule(
        "has_citation",
        "The text cites at least config.min_citations sources ([1], [^1], (Source: ...), URLs).",
        c.HasCitationConfig,
        ("rag", "grounding"),
        {"output": "Paris is the capital [1]."},
        {},
        1.0,
        "pass",
    ),
    _rule(
        "refusal",
        'The answer does not refuse ("I can\'t help with that"); with expect_refusal=true, refusing passes.',
        c.RefusalConfig,
        ("safety", "helpfulness"),
        {"output": "I'm sorry, but I can't help with that request."},
        {},
        0.0,
        "fail",
    ),
    _judge(
        "faithfulness",
        "LLM judge: the answer states only what the retrieved context supports (1: faithful, 0: hallucinated). "
        "Context: metadata[context_key], else the outputs of the trace's retrieval spans.",
        ("rag", "hallucination"),
        _RAG,
        1.0,
        "Every claim of the answer is supported by the context.",
    ),
    _judge(
        "answer_relevance",
        "LLM judge: the answer addresses the question asked (1: fully relevant).",
        ("relevance",),
        _QA,
        1.0,
        "The answer directly answers the question.",
    ),
    _judge(
        "correctness",
        "LLM judge: the answer agrees with the reference answer (metadata[reference_key]).",
        ("correctness", "reference"),
        {**_QA, "metadata": {"expected_output": "Paris"}},
        1.0,
        "The answer matches the reference.",
    ),
    _judge(
        "toxicity",
        "LLM judge: the answer is free of insults, threats, harassment, hate and sexual content (1: not toxic).",
        ("safety",),
        {"output": "Thanks for asking! Here is how to reset your password."},
        1.0,
        "Polite and neutral.",
    ),
    _judge(
        "context_relevance",
        "LLM judge: the retrieved context is relevant to the question (1: relevant).",
        ("rag", "retrieval"),
        _RAG,
        1.0,
        "The context contains the answer to the question.",
    ),
    _judge(
        CUSTOM_RUBRIC,
        "LLM judge with your own rubric in config.prompt ({{input}}, {{output}}, {{context}}, {{reference}} are "
        "filled in). Any metric_name not in this catalog with evaluator_type llm and config.prompt uses it.",
        ("custom",),
        {"input": "Where is my order?", "output": "It ships tomorrow. Anything else I can do?"},
        1.0,
        "Polite and helpful.",
    ),
)
BY_NAME: dict[str, CatalogEntry] = {entry.name: entry for entry in CATALOG}


class UnknownMetricError(ValueError):
    """The metric is neither in the catalog nor a custom rubric."""


class InvalidConfigError(ValueError):
    """The configuration does not suit the evaluator; ``field`` names the offending one."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Resolved:
    """What to run: the catalog entry, under the requested metric name, with its parsed config."""

    metric_name: str
    entry: CatalogEntry
    config: c.EvaluatorConfig


def resolve(metric_name: str, evaluator_type: str, config: dict[str, Any]) -> Resolved:
    """The evaluator a request names, its configuration validated; raises otherwise."""
    entry = BY_NAME.get(metric_name)
    if entry is None:
        if evaluator_type == "llm" and "prompt" in config:
            entry = BY_NAME[CUSTOM_RUBRIC]
        else:
            builtin = ", ".join(e.name for e in CATALOG)
            raise UnknownMetricError(
                f"Unknown metric '{metric_name}': see GET {CATALOG_PATH} (built in: {builtin}; or evaluator_type "
                "'llm' with config.prompt for a custom rubric)"
            )
    if entry.evaluator_type != evaluator_type:
        raise InvalidConfigError(
            f"Metric '{metric_name}' is an evaluator of type '{entry.evaluator_type}', not '{evaluator_type}' "
            f"(see GET {CATALOG_PATH})",
            "evaluator_type",
        )
    try:
        parsed = entry.config_model.model_validate(config)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in ("config", *error["loc"]))
        message = error["msg"].removeprefix("Value error, ")
        raise InvalidConfigError(f"Invalid field '{where}': {message}", where) from None
    return Resolved(metric_name, entry, parsed)


def catalog_json() -> dict[str, Any]:
    """The body of ``GET /v1/eval-catalog``."""
    return {"evaluators": [entry.json() for entry in CATALOG]}
