-- Feedback and evaluations, written by the ingest-worker from trulayer.feedback and
-- trulayer.eval.results. Both keyed by id, so a redelivered record replaces itself.
-- An evaluation is written once per state (pending, running, complete, failed, skipped): the
-- table keeps the highest `version` (attempt × 10 + the status's rank), whatever order the
-- states arrived in; reads use FINAL. created_at is the evaluation's creation (the same in
-- every state), so all states of one evaluation land in one partition. Retention follows the
-- project's (retention_days, from receipt), like traces.

CREATE TABLE IF NOT EXISTS {db}.feedback
(
    tenant_id      LowCardinality(String),
    project_id     LowCardinality(String),
    trace_id       String,
    id             String,
    label          LowCardinality(String),
    score          Nullable(Float64),
    comment        Nullable(String),
    metadata       String,
    request_id     String,
    created_at     DateTime64(3, 'UTC'),
    retention_days UInt16,
    INDEX idx_trace trace_id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(created_at)
PARTITION BY toYYYYMM(created_at)
ORDER BY (tenant_id, project_id, trace_id, id)
TTL toDateTime(created_at) + toIntervalDay(retention_days);

CREATE TABLE IF NOT EXISTS {db}.evaluations
(
    tenant_id           LowCardinality(String),
    project_id          LowCardinality(String),
    trace_id            String,
    id                  String,
    rule_id             String,
    metric_name         LowCardinality(String),
    evaluator_type      LowCardinality(String),
    status              LowCardinality(String),
    score               Nullable(Float64),
    label               LowCardinality(String),
    reasoning           Nullable(String),
    error               Nullable(String),
    attempts            UInt32,
    judge_model         String,
    judge_input_tokens  UInt64,
    judge_output_tokens UInt64,
    judge_cost          Float64,
    judge_prompt        String,
    config              String,
    model               LowCardinality(String),
    created_at          DateTime64(3, 'UTC'),
    completed_at        Nullable(DateTime64(3, 'UTC')),
    next_attempt_at     Nullable(DateTime64(3, 'UTC')),
    updated_at          DateTime64(3, 'UTC'),
    version             UInt64,
    retention_days      UInt16,
    INDEX idx_id id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_trace trace_id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(created_at)
ORDER BY (tenant_id, project_id, id)
TTL toDateTime(created_at) + toIntervalDay(retention_days);
