-- Traces, spans and events. ReplacingMergeTree keyed by ids: a redelivered Kafka record
-- writes rows with the same sorting key, and reads use FINAL, so redelivery is harmless.
-- started_at is part of the key only through toDate(): it is fixed by the gateway before
-- the record is produced, so a redelivered record has the same key.
-- Retention counts from receipt (created_at), not from the trace's own timestamp: a backfilled
-- trace with an old started_at is kept as long as any other, never dropped on insert.

CREATE TABLE IF NOT EXISTS {db}.traces
(
    tenant_id         LowCardinality(String),
    project_id        LowCardinality(String),
    id                String,
    session_id        String,
    external_id       String,
    name              String,
    input             String,
    output            String,
    model             LowCardinality(String),
    latency_ms        Nullable(Float64),
    cost              Nullable(Float64),
    error             Nullable(String),
    status            LowCardinality(String),
    failure_type      LowCardinality(String),
    prompt_tokens     UInt32,
    completion_tokens UInt32,
    total_tokens      UInt32,
    tag_list          Array(String),
    tag_map           Map(String, String),
    metadata          String,
    started_at        DateTime64(3, 'UTC'),
    ended_at          Nullable(DateTime64(3, 'UTC')),
    created_at        DateTime64(3, 'UTC'),
    span_count        UInt32,
    retention_days    UInt16,
    INDEX idx_id id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_session session_id TYPE bloom_filter GRANULARITY 4,
    INDEX idx_model model TYPE set(256) GRANULARITY 4
)
ENGINE = ReplacingMergeTree(created_at)
PARTITION BY toYYYYMM(started_at)
ORDER BY (tenant_id, project_id, toDate(started_at), id)
TTL toDateTime(created_at) + toIntervalDay(retention_days);

CREATE TABLE IF NOT EXISTS {db}.spans
(
    tenant_id         LowCardinality(String),
    project_id        LowCardinality(String),
    trace_id          String,
    id                String,
    parent_span_id    String,
    name              String,
    type              LowCardinality(String),
    input             String,
    output            String,
    model             LowCardinality(String),
    latency_ms        Nullable(Float64),
    cost              Nullable(Float64),
    error             Nullable(String),
    prompt_tokens     UInt32,
    completion_tokens UInt32,
    metadata          String,
    start_time        Nullable(DateTime64(3, 'UTC')),
    end_time          Nullable(DateTime64(3, 'UTC')),
    trace_started_at  DateTime64(3, 'UTC'),
    created_at        DateTime64(3, 'UTC'),
    retention_days    UInt16
)
ENGINE = ReplacingMergeTree(created_at)
PARTITION BY toYYYYMM(trace_started_at)
ORDER BY (tenant_id, project_id, trace_id, id)
TTL toDateTime(created_at) + toIntervalDay(retention_days);

CREATE TABLE IF NOT EXISTS {db}.events
(
    tenant_id         LowCardinality(String),
    project_id        LowCardinality(String),
    trace_id          String,
    id                String,
    span_id           String,
    level             LowCardinality(String),
    message           String,
    metadata          String,
    timestamp         DateTime64(3, 'UTC'),
    trace_started_at  DateTime64(3, 'UTC'),
    created_at        DateTime64(3, 'UTC'),
    retention_days    UInt16
)
ENGINE = ReplacingMergeTree(created_at)
PARTITION BY toYYYYMM(trace_started_at)
ORDER BY (tenant_id, project_id, trace_id, id)
TTL toDateTime(created_at) + toIntervalDay(retention_days);
