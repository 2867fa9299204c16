"""The evaluators: deterministic ones (:mod:`.deterministic`, :mod:`.pii`) are pure functions
of a trace and a configuration; LLM judges are a prompt (:mod:`.judges`) sent to the judge
client. :mod:`.registry` binds each catalog name to its implementation."""
