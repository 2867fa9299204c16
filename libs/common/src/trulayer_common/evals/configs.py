"""The configuration of each evaluator (``config`` of ``POST /v1/eval`` and of eval rules).

Validated where a request enters (400 naming the field) and again by the eval-engine before it
runs, so a rule can never hold a configuration its evaluator cannot use. Unknown fields are
refused: a misspelt option would otherwise be silently ignored and the evaluator would check
something else than the user meant. Patterns are RE2 (linear time: no pattern can stall the
engine); JSON Schemas may not reference remote documents.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import jsonschema_rs
import re2
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_PATTERN_CHARS = 1000
MAX_RUBRIC_CHARS = 8000
Text = Annotated[str, Field(min_length=1, max_length=1000)]
MetadataKey = Annotated[str, Field(min_length=1, max_length=200)]
Ratio = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
PiiKind = Literal["email", "phone", "card_number", "national_id", "iban"]
PII_KINDS: tuple[PiiKind, ...] = ("email", "phone", "card_number", "national_id", "iban")


class EvaluatorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class TextConfig(EvaluatorConfig):
    field: Literal["output", "input"] = Field(default="output", description="the part of the trace evaluated")


class JsonValidConfig(TextConfig):
    pass


def json_schema_validator(schema: dict[str, Any]) -> jsonschema_rs.Validator:
    """A validator for ``schema``: no remote references, linear-time patterns. ``ValueError``
    naming the problem when the schema is not a valid JSON Schema."""
    try:
        jsonschema_rs.meta.validate(schema)
        return jsonschema_rs.validator_for(schema, offline=True, pattern_options=jsonschema_rs.RegexOptions())
    except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError, ValueError) as exc:
        raise ValueError(f"not a usable JSON Schema: {str(exc).splitlines()[0][:300]}") from None


class JsonSchemaConfig(TextConfig):
    json_schema: dict[str, Any] = Field(alias="schema", description="the JSON Schema the output must conform to")

    @field_validator("json_schema")
    @classmethod
    def _usable(cls, schema: dict[str, Any]) -> dict[str, Any]:
        json_schema_validator(schema)
        return schema


def compile_pattern(pattern: str, ignore_case: bool) -> Any:
    """The RE2 program of ``pattern``; ``ValueError`` when RE2 cannot compile it (backreferences
    and lookaround are not supported: they are what makes a pattern take exponential time)."""
    options = re2.Options()
    options.case_sensitive = not ignore_case
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        text = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
        raise ValueError(f"not an RE2 pattern: {text}") from None


class RegexMatchConfig(TextConfig):
    pattern: Annotated[str, Field(min_length=1, max_length=MAX_PATTERN_CHARS)]
    ignore_case: bool = False
    expect: Literal["match", "no_match"] = Field(default="match", description="pass when the text matches, or not")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        compile_pattern(pattern, ignore_case=False)
        return pattern


class ContainsConfig(TextConfig):
    values: Annotated[list[Text], Field(min_length=1, max_length=50)]
    mode: Literal["any", "all"] = Field(default="any", description="pass when any (all) of the values occur")
    case_sensitive: bool = False


class NotContainsConfig(TextConfig):
    values: Annotated[list[Text], Field(min_length=1, max_length=50)]
    case_sensitive: bool = False


class ExpectedValueConfig(TextConfig):
    expected: Annotated[str, Field(max_length=100_000)] | None = Field(
        default=None, description="the expected text; default: the trace's metadata[expected_key]"
    )
    expected_key: MetadataKey = "expected_output"
    normalize: bool = Field(default=True, description="compare with case, surrounding and repeated spaces ignored")


class ExactMatchConfig(ExpectedValueConfig):
    pass


class LevenshteinRatioConfig(ExpectedValueConfig):
    threshold: Ratio = Field(default=0.8, description="pass at or above this similarity")


class LatencyThresholdConfig(EvaluatorConfig):
    max_ms: Annotated[float, Field(gt=0, le=86_400_000, allow_inf_nan=False)]


class OutputLengthConfig(TextConfig):
    min: Annotated[int, Field(ge=0, le=10_000_000)] = 0
    max: Annotated[int, Field(ge=0, le=10_000_000)] | None = None
    unit: Literal["chars", "words"] = "chars"

    @model_validator(mode="after")
    def _bounds(self) -> OutputLengthConfig:
        if self.max is not None and self.max < self.min:
            raise ValueError("max must not be below min")
        return self


class PiiLeakageConfig(TextConfig):
    kinds: Annotated[list[PiiKind], Field(min_length=1)] = Field(default_factory=lambda: list(PII_KINDS))


class HasCitationConfig(TextConfig):
    min_citations: Annotated[int, Field(ge=1, le=1000)] = 1


class RefusalConfig(TextConfig):
    expect_refusal: bool = Field(default=False, description="true: refusing is the good outcome (red-team prompts)")


class JudgeConfig(EvaluatorConfig):
    model: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        default=None, description="the judge model; default: the engine's JUDGE_MODEL"
    )
    threshold: Ratio = Field(default=0.5, description="pass at or above this score")
    context_key: MetadataKey = Field(
        default="context", description="metadata key of the retrieved context; default: the retrieval spans' outputs"
    )
    reference_key: MetadataKey = Field(default="expected_output", description="metadata key of the reference answer")


class CustomRubricConfig(JudgeConfig):
    prompt: Annotated[str, Field(min_length=1, max_length=MAX_RUBRIC_CHARS)] = Field(
        description="the rubric; {{input}}, {{output}}, {{context}} and {{reference}} are replaced by the trace's"
    )
