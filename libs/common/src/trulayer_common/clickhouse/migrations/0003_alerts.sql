-- Alerting: rule firings, webhook delivery attempts and anomalies, written by the
-- ingest-worker from trulayer.alerts. ReplacingMergeTree keyed by ids: an alert event is
-- written again with a higher version when a webhook answered 2xx (notification_sent), and a
-- redelivered record replaces itself. Reads use FINAL.

CREATE TABLE IF NOT EXISTS {db}.alert_events
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
PARTITION BY toYYYYMM(triggered_at)
ORDER BY (tenant_id, project_id, id)
TTL toDateTime(created_at) + toIntervalDay(90);

CREATE TABLE IF NOT EXISTS {db}.webhook_deliveries
(
    tenant_id      LowCardinality(String),
    webhook_id     String,
    alert_event_id String,
    id             String,
    url            String,
    attempt        UInt16,
    status_code    UInt16,
    outcome        LowCardinality(String),
    error          String,
    duration_ms    Float64,
    attempted_at   DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(attempted_at)
ORDER BY (tenant_id, alert_event_id, webhook_id, id, attempt)
TTL toDateTime(attempted_at) + toIntervalDay(30);

CREATE TABLE IF NOT EXISTS {db}.anomalies
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
PARTITION BY toYYYYMM(window_start)
ORDER BY (tenant_id, project_id, id)
TTL toDateTime(detected_at) + toIntervalDay(90);
