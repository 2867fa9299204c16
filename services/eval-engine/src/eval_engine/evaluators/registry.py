"""The implementation of each catalog name (``trulayer_common.evals.catalog``): a deterministic
function, or a judge prompt builder. :func:`check_registry` (called at start, and by a unit
test) refuses a catalog entry without an implementation or an implementation without an entry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eval_engine.evaluators import deterministic as d
from eval_engine.evaluators.judges import PRESETS, preset_messages, rubric_messages
from eval_engine.evaluators.verdict import Verdict
from eval_engine.trace_view import TraceView
from trulayer_common.evals.catalog import CATALOG, CUSTOM_RUBRIC

Deterministic = Callable[[TraceView, Any], Verdict]
PromptBuilder = Callable[[TraceView, Any, int], list[dict[str, str]]]

DETERMINISTIC: dict[str, Deterministic] = {
    "json_valid": d.json_valid,
    "json_schema": d.json_schema,
    "regex_match": d.regex_match,
    "contains": d.contains,
    "not_contains": d.not_contains,
    "exact_match": d.exact_match,
    "levenshtein_ratio": d.levenshtein_ratio,
    "latency_threshold": d.latency_threshold,
    "output_length": d.output_length,
    "pii_leakage": d.pii_leakage,
    "has_citation": d.has_citation,
    "refusal": d.refusal,
}


def _preset(name: str) -> PromptBuilder:
    return lambda trace, config, max_chars: preset_messages(name, trace, config, max_chars)


JUDGES: dict[str, PromptBuilder] = {name: _preset(name) for name in PRESETS}
JUDGES[CUSTOM_RUBRIC] = rubric_messages


def check_registry() -> None:
    """Raise when the catalog and the implementations differ (a programming error)."""
    rules = {e.name for e in CATALOG if e.evaluator_type == "rule"}
    llms = {e.name for e in CATALOG if e.evaluator_type == "llm"}
    if rules != set(DETERMINISTIC) or llms != set(JUDGES):
        rule_diff, llm_diff = sorted(rules ^ set(DETERMINISTIC)), sorted(llms ^ set(JUDGES))
        raise RuntimeError(f"catalog and evaluators differ: rule {rule_diff}, llm {llm_diff}")
