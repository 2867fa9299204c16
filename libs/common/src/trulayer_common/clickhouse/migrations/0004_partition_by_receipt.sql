-- Partition by time of receipt, not by the client's own timestamps (issue 15, finding 6).
--
-- Before: traces, spans and events were partitioned by the trace's started_at, which the
-- client chooses: one tenant sending traces spread over 200 months made every insert touch 200
-- partitions ("too many partitions for single INSERT block"), failed the writer's batches for
-- everyone and forced record-by-record inserts. Now every table is partitioned by created_at
-- (the gateway's time of receipt, the same on a redelivery): an insert batch of the writer
-- touches one partition, two across a month boundary, whatever the tenants send. The alert
-- tables follow (alert_events by created_at, anomalies by detected_at, both server time).
--
-- Reads keep their pruning: traces stay ordered by (tenant, project, toDate(started_at), id),
-- so a time filter still skips granules through the primary key.
--
-- Also: token counts are UInt64. They were UInt32 and wrapped silently (5e9 → 705032704), and a
-- trace's total is the sum over up to 1,000 spans of counts up to 10⁹ each.
--
-- Each REBUILD creates the new table, copies every row, swaps atomically and drops the old one;
-- it is idempotent and safe to re-run after an interruption (clickhouse/rebuild.py).

REBUILD TABLE {db}.traces AS
CREATE TABLE {db}.traces
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
    prompt_tokens     UInt64,
    completion_tokens UInt64,
    total_tokens      UInt64,
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
PARTITION BY toYYYYMM(created_at)
ORDER BY (tenant_id, project_id, toDate(started_at), id)
TTL toDateTime(created_at) + toIntervalDay(retention_days);

REBUILD TABLE {db}.spans AS
CREATE TABLE {db}.spans
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
    prompt_tokens     UInt64,
    completion_tokens UInt64,
    metadata          String,
    start_time        Nullable(DateTime64(3, 'UTC')),
    end_time          Nullable(DateTime64(3, 'UTC')),
    trace_started_at  DateTime64(3, 'UTC'),
    created_at        DateTime64(3, 'UTC'),
    retention_days    UInt16
)
ENGINE = ReplacingMergeTree(created_at)
PARTITION BY toYYYYMM(created_at)
ORDER BY (tenant_id, project_id, trace_id, id)
TTL toDateTime(created_at) + toIntervalDay(retention_days);

REBUILD TABLE {db}.events AS
CREATE TABLE {db}.events
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
PARTITION BY toYYYYMM(created_at)
ORDER BY (tenant_id, project_id, trace_id, id)
TTL toDateTime(created_at) + toIntervalDay(retention_days);

REBUILD TABLE {db}.alert_events AS
CREATE TABLE {db}.alert_events
(
    tenant_id         LowCardinality(String),
    project_id        LowCardinality(String),
    id                String,
    rule_id           String,
    rule_name         String,
    metric            LowCardinality(String),
    metric_name       String,
    operator          LowCardinality(String),
    threshold_value   Float64,
    metric_value      Float64,
    window_secs       UInt32,
    severity          LowCardinality(String),
    model             String,
    triggered_at      DateTime64(3, 'UTC'),
    notification_sent Bool,
    version           UInt64,
    created_at        DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(created_at)
ORDER BY (tenant_id, project_id, id)
TTL toDateTime(created_at) + toIntervalDay(90);

REBUILD TABLE {db}.anomalies AS
CREATE TABLE {db}.anomalies
(
    tenant_id      LowCardinality(String),
    project_id     LowCardinality(String),
    id             String,
    type           LowCardinality(String),
    metric         LowCardinality(String),
    severity       LowCardinality(String),
    observed_value Float64,
    baseline_mean  Float64,
    baseline_std   Float64,
    z_score        Float64,
    window_start   DateTime64(3, 'UTC'),
    window_end     DateTime64(3, 'UTC'),
    detected_at    DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(detected_at)
PARTITION BY toYYYYMM(detected_at)
ORDER BY (tenant_id, project_id, id)
TTL toDateTime(detected_at) + toIntervalDay(90);
