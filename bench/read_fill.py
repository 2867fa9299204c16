"""The read bench's data: N traces (one LLM span each) of one tenant over the last 7 days,
written straight into an embedded chDB with ``INSERT … SELECT … FROM numbers()`` (not through
the API: 10 million traces take minutes this way, hours through ingest).

Run by ``bench/read_bench.py`` in its own process while the stack is stopped (chDB allows one
process per data directory). The rows look like what the trace writer stores: 3 projects
(70/20/10 %), 10 models (skewed), 3 % errors of the four failure types, log-normal latencies
(50 ms to ~3 s), costs, token counts, list tags, metadata {team (12), env (2), user_id (50,000)},
200,000 sessions, prompt and answer texts. The rollups are filled by their views as the rows go
in, exactly as under ingest.

    python bench/read_fill.py --data-dir .trulayer/bench-reads --tenant T --project P1,P2,P3 --traces 10000000
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import orjson

from trulayer_common.clickhouse import apply_migrations, create_clickhouse
from trulayer_common.logging import configure_logging

SPAN_DAYS = 7


def _array(*items: str) -> str:
    return "[" + ",".join(f"'{item}'" for item in items) + "]"


MODELS = _array(
    *("gpt-4o",) * 3,
    *("gpt-4o-mini",) * 2,
    *("claude-3-5-sonnet",) * 2,
    "llama-3-70b",
    "gemini-1.5-pro",
    "mistral-large",
)
ERRORS = _array(
    "Request timed out after 30s",
    "429 Too Many Requests",
    "could not parse JSON output",
    "maximum context length exceeded",
)
FAILURES = _array("timeout", "rate_limit", "invalid_response", "context_length")

TRACES = f"""
INSERT INTO {{db}}.traces (tenant_id, project_id, id, session_id, external_id, name, input, output, model,
 latency_ms, cost, error, status, failure_type, prompt_tokens, completion_tokens, total_tokens, tag_list, tag_map,
 metadata, started_at, ended_at, created_at, span_count, retention_days)
SELECT {{tenant:String}},
 {{projects:Array(String)}}[[1,1,1,1,1,1,1,2,2,3][n % 10 + 1]],
 concat('tr-', leftPad(toString(n), 10, '0')), concat('sess-', toString(n % 200000)), '', 'chat.completion',
 concat('Summarise the following support ticket in two sentences: customer #', toString(n % 100000),
        ' cannot log in after a password reset and asks for help with the account ...'),
 concat('The customer ', toString(n % 7777), ' is locked out after a password reset and asks for an unlock.'),
 {MODELS}[cityHash64(n, 1) % 10 + 1],
 round(50 + exp(5.5 + (cityHash64(n, 2) % 1000) / 1000.0 * 2.5), 1),
 round((cityHash64(n, 3) % 5000) / 1000000.0, 6),
 if(cityHash64(n, 4) % 100 < 3, {ERRORS}[cityHash64(n, 5) % 4 + 1], NULL),
 if(cityHash64(n, 4) % 100 < 3, 'error', 'success'),
 if(cityHash64(n, 4) % 100 < 3, {FAILURES}[cityHash64(n, 5) % 4 + 1], ''),
 100 + cityHash64(n, 6) % 900 AS p, 20 + cityHash64(n, 7) % 300 AS c, p + c,
 ['prod', concat('feature-', toString(n % 5))], map(),
 concat('{{"team":"team-', toString(cityHash64(n, 8) % 12), '","env":"', if(n % 4 = 0, 'staging', 'prod'),
        '","user_id":"u', toString(cityHash64(n, 9) % 50000), '"}}'),
 now64(3) - toIntervalMillisecond(toUInt64(n * {{span_ms:UInt64}} / {{n:UInt64}})) AS st,
 st + toIntervalMillisecond(300), st + toIntervalMillisecond(400), 1, 30
FROM (SELECT number AS n FROM numbers({{n:UInt64}}))
"""

SPANS = """
INSERT INTO {db}.spans (tenant_id, project_id, trace_id, id, parent_span_id, name, type, input, output, model,
 latency_ms, cost, error, prompt_tokens, completion_tokens, metadata, start_time, end_time, trace_started_at,
 created_at, retention_days)
SELECT tenant_id, project_id, id, concat(id, '-llm'), '', 'openai.chat', 'llm', '', '', model, latency_ms - 20, cost,
 error, prompt_tokens, completion_tokens, '{}', started_at, started_at + toIntervalMillisecond(280), started_at,
 created_at, retention_days
FROM {db}.traces WHERE tenant_id = {tenant:String}
"""


async def fill(data_dir: Path, tenant: str, projects: list[str], traces: int) -> dict[str, object]:
    ch = create_clickhouse(f"chdb://{data_dir / 'clickhouse'}", "trulayer")
    try:
        await apply_migrations(ch)
        db = ch.database
        for table in (
            "traces",
            "spans",
            "events",
            "trace_rollup_minute",
            "trace_rollup_hour",
            "trace_metadata_rollup_hour",
            "ingest_health_minute",
        ):
            await ch.command(f"TRUNCATE TABLE {db}.{table}")
        started = time.monotonic()
        params = {"tenant": tenant, "projects": projects, "n": traces, "span_ms": SPAN_DAYS * 86_400_000}
        await ch.command(TRACES.replace("{db}", db), params, settings={"max_partitions_per_insert_block": 0})
        traces_s = time.monotonic() - started
        await ch.command(SPANS.replace("{db}", db), {"tenant": tenant})
        spans_s = time.monotonic() - started - traces_s
        await ch.command(f"OPTIMIZE TABLE {db}.trace_rollup_hour FINAL")
        count = await ch.query(
            f"SELECT count() AS n FROM {db}.traces WHERE tenant_id = {{t:String}}", {"t": tenant}, max_seconds=None
        )
        return {
            "tenant": tenant,
            "traces": int(count[0]["n"]),
            "traces_seconds": round(traces_s, 1),
            "spans_seconds": round(spans_s, 1),
            "filled_at": time.time(),
        }
    finally:
        ch.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--projects", required=True, help="three project ids, comma-separated")
    parser.add_argument("--traces", type=int, default=10_000_000)
    args = parser.parse_args()
    configure_logging("WARNING", json=False)
    projects = args.projects.split(",")
    if len(projects) != 3:
        raise SystemExit("--projects wants three project ids")
    result = asyncio.run(fill(args.data_dir, args.tenant, projects, args.traces))
    (args.data_dir / "fill.json").write_bytes(orjson.dumps(result))
    print(orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()
