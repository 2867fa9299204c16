"""What an evaluator concludes, and the error an evaluation cannot be made for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Label = Literal["pass", "fail", "warn"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """``score`` 0..1, 1 always the good end; ``label`` pass|fail|warn; ``reasoning`` for people."""

    score: float
    label: Label
    reasoning: str


class EvaluationError(Exception):
    """The trace lacks what the evaluator needs (no expected value, no context): the evaluation
    is ``failed`` with this message, not retried."""


def passed(ok: bool, reasoning: str) -> Verdict:
    return Verdict(1.0 if ok else 0.0, "pass" if ok else "fail", reasoning)


def graded(score: float, threshold: float, reasoning: str, warn_band: float = 0.1) -> Verdict:
    """``pass`` at or above ``threshold``, ``warn`` within ``warn_band`` below it, else ``fail``."""
    score = min(max(score, 0.0), 1.0)
    label: Label = "pass" if score >= threshold else "warn" if score >= threshold - warn_band else "fail"
    return Verdict(round(score, 4), label, reasoning)
