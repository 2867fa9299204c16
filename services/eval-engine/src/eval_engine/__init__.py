"""The eval-engine: runs evaluations requested by ``POST /v1/eval`` and by eval rules on new
traces, with built-in deterministic evaluators and LLM judges over any OpenAI-compatible
chat-completions endpoint; fail-open (``docs/evals.md``)."""
