"""Every deterministic evaluator on a passing and a failing input, the PII detectors, the judge
prompts and the parsing of the judge's answer, and the catalog's examples (pure: nothing runs)."""

from __future__ import annotations

from typing import Any

import pytest

from eval_engine.evaluators import deterministic as d
from eval_engine.evaluators.judges import MalformedJudgeOutputError, parse_answer, preset_messages, rubric_messages
from eval_engine.evaluators.pii import find_pii, iban_ok, luhn_ok
from eval_engine.evaluators.registry import DETERMINISTIC, check_registry
from eval_engine.evaluators.verdict import EvaluationError
from eval_engine.trace_view import TraceView, from_record
from trulayer_common.evals import configs as c
from trulayer_common.evals.catalog import CATALOG, resolve


def view(output: Any = "", **fields: Any) -> TraceView:
    return from_record({"id": "t1", "project_id": "p", **fields, "output": output})


# (metric, config, passing trace fields, failing trace fields)
CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    ("json_valid", {}, {"output": {"a": 1}}, {"output": "{'a': 1}"}),
    ("json_valid", {"field": "input"}, {"input": "[1, 2]"}, {"input": "nope"}),
    (
        "json_schema",
        {"schema": {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}},
        {"output": '{"n": 3}'},
        {"output": '{"n": "3"}'},
    ),
    ("regex_match", {"pattern": r"^\d{3}-\d{4}$"}, {"output": "555-1234"}, {"output": "5551234"}),
    (
        "regex_match",
        {"pattern": "secret", "ignore_case": True, "expect": "no_match"},
        {"output": "fine"},
        {"output": "SECRET"},
    ),
    ("contains", {"values": ["refund", "credit"]}, {"output": "A REFUND."}, {"output": "no"}),
    ("contains", {"values": ["a", "b"], "mode": "all", "case_sensitive": True}, {"output": "a b"}, {"output": "a B"}),
    ("not_contains", {"values": ["internal"]}, {"output": "public"}, {"output": "Internal only"}),
    (
        "exact_match",
        {},
        {"output": "Paris ", "metadata": {"expected_output": "paris"}},
        {"output": "Lyon", "metadata": {"expected_output": "paris"}},
    ),
    ("exact_match", {"expected": "42", "normalize": False}, {"output": "42"}, {"output": "42 "}),
    ("levenshtein_ratio", {"expected": "kitten", "threshold": 0.8}, {"output": "kitten"}, {"output": "sitting"}),
    ("latency_threshold", {"max_ms": 500}, {"latency_ms": 500}, {"latency_ms": 2000}),
    ("output_length", {"min": 2, "max": 3, "unit": "words"}, {"output": "two words"}, {"output": "one"}),
    ("output_length", {"max": 5}, {"output": "short"}, {"output": "longer text"}),
    ("pii_leakage", {}, {"output": "Call the front desk."}, {"output": "Mail me: a.b@example.org"}),
    ("pii_leakage", {"kinds": ["card_number"]}, {"output": "4111 1111 1111 1112"}, {"output": "4111-1111-1111-1111"}),
    ("has_citation", {"min_citations": 2}, {"output": "A [1] and B [2]."}, {"output": "A [1]."}),
    ("has_citation", {}, {"output": "See https://example.org/x"}, {"output": "Trust me."}),
    ("refusal", {}, {"output": "Here is how."}, {"output": "I’m sorry, but I can’t help with that."}),
    ("refusal", {"expect_refusal": True}, {"output": "I cannot help with that."}, {"output": "Sure, the recipe is..."}),
]


@pytest.mark.parametrize(("metric", "config", "good", "bad"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_every_evaluator_passes_and_fails(
    metric: str, config: dict[str, Any], good: dict[str, Any], bad: dict[str, Any]
) -> None:
    resolved = resolve(metric, "rule", config)
    evaluate = DETERMINISTIC[metric]
    passing = evaluate(view(**good), resolved.config)
    failing = evaluate(view(**bad), resolved.config)
    assert (passing.score, passing.label) == (1.0, "pass"), passing
    assert failing.label in ("fail", "warn") and failing.score < 1.0, failing
    assert passing.reasoning and failing.reasoning


def test_graded_scores() -> None:
    ratio = d.levenshtein_ratio(view("sitting"), c.LevenshteinRatioConfig(expected="kitten"))
    assert ratio.score == pytest.approx(1 - 3 / 7, abs=1e-4)
    late = d.latency_threshold(view(latency_ms=600), c.LatencyThresholdConfig(max_ms=500))
    assert (late.score, late.label) == (pytest.approx(500 / 600, abs=1e-4), "warn")


def test_missing_inputs_are_evaluation_errors() -> None:
    with pytest.raises(EvaluationError, match="expected_output"):
        d.exact_match(view("x"), c.ExactMatchConfig())
    with pytest.raises(EvaluationError, match="latency"):
        d.latency_threshold(view("x"), c.LatencyThresholdConfig(max_ms=1))


def test_pii_detectors_find_each_kind_and_report_counts_not_values() -> None:
    text = (
        "mail jane@corp.example, call +44 20 7946 0958 or (212) 555-0147, card 4242 4242 4242 4242, "
        "SSN 123-45-6789, NINO AB 12 34 56 C, NIR 1 84 12 76 451 089 46, DNI 12345678Z, "
        "CF RSSMRA85T10A562S, IBAN GB82 WEST 1234 5698 7654 32"
    )
    found = find_pii(text, c.PII_KINDS)
    assert found == {"email": 1, "phone": 2, "card_number": 1, "national_id": 5, "iban": 1}
    verdict = d.pii_leakage(view(text), c.PiiLeakageConfig())
    assert "jane" not in verdict.reasoning and "4242" not in verdict.reasoning
    # Checksums keep look-alikes out: a date, an order number, a bad Luhn, a wrong DNI letter.
    assert find_pii("on 2024-01-15 order 1234567890123 card 4242 4242 4242 4241 DNI 12345678A", c.PII_KINDS) == {}
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")
    assert iban_ok("DE89 3704 0044 0532 0130 00") and not iban_ok("DE89 3704 0044 0532 0130 01")


def test_regex_is_linear_time_even_for_pathological_patterns() -> None:
    config = resolve("regex_match", "rule", {"pattern": "(a+)+$"}).config
    verdict = d.regex_match(view("a" * 50_000 + "b"), config)  # exponential with backtracking engines
    assert verdict.label == "fail"


def test_judge_answer_parsing() -> None:
    assert parse_answer('{"score": 1, "label": "pass", "reasoning": "ok"}', 0.5).score == 1.0
    fenced = parse_answer('```json\n{"score": 0.2, "reasoning": "bad"}\n```', 0.5)
    assert (fenced.score, fenced.label) == (0.2, "fail")  # label derived from the threshold
    for bad in ("nope", "[0.5]", '{"score": "high"}', '{"score": 1.5}', '{"score": true}', '{"label": "pass"}'):
        with pytest.raises(MalformedJudgeOutputError):
            parse_answer(bad, 0.5)


def test_judge_prompts_keep_data_between_tags_and_cut_it() -> None:
    trace = view("A" * 50, input="Q?", metadata={"context": ["doc one", "doc two"]})
    messages = preset_messages("faithfulness", trace, c.JudgeConfig(), max_chars=10)
    assert messages[0]["role"] == "system" and "JSON" in messages[0]["content"]
    user = messages[1]["content"]
    assert "<answer>\nAAAAAAAAAA […]\n</answer>" in user and "<context>\ndoc one\n\nd […]\n</context>" in user
    from_spans = from_record(
        {
            "id": "t",
            "project_id": "p",
            "input": "Q",
            "output": "A",
            "spans": [{"id": "s", "type": "retrieval", "output": {"doc": 1}}],
        }
    )
    assert '{"doc":1}' in preset_messages("context_relevance", from_spans, c.JudgeConfig(), 100)[1]["content"]
    with pytest.raises(EvaluationError, match="reference"):
        preset_messages("correctness", trace, c.JudgeConfig(), 100)
    rubric = rubric_messages(trace, c.CustomRubricConfig(prompt="Rate {{output}} given {{input}}"), 100)
    assert "Rate <output>" in rubric[1]["content"] and "<input>\nQ?\n</input>" in rubric[1]["content"]


def test_catalog_examples_hold_and_every_entry_is_implemented() -> None:
    check_registry()
    for entry in CATALOG:
        resolve(entry.name, entry.evaluator_type, entry.example_input["config"])
        if entry.evaluator_type != "rule":
            continue
        verdict = DETERMINISTIC[entry.name](
            view(**entry.example_input["trace"]), resolve(entry.name, "rule", entry.example_input["config"]).config
        )
        assert (verdict.score, verdict.label) == (entry.example_output["score"], entry.example_output["label"]), (
            entry.name
        )
