-- The decision log (trulayer.control.decisions), written by the ingest-worker: every decision
-- the gateway took (source 'server') or an SDK reported (source 'sdk'). Shaped for the query
-- API's dataSource configMetrics: requestedModel → requested_model, targetModel →
-- target_model, loadbalanceRuleId → loadbalance_rule_id, ratelimitRuleId → ratelimit_rule_id,
-- budgetRuleId → budget_rule_id, loadbalanceTargetAttemptCount →
-- loadbalance_target_attempt_count, configType → config_type, status, projectId → project_id,
-- metadata.<key> → JSONExtractString(metadata, '<key>'). ReplacingMergeTree keyed by id: a
-- redelivered record, or a report re-sent with the same id, is stored once (reads use FINAL).
-- Partitioned by receipt, never by the client-chosen decided_at.

CREATE TABLE IF NOT EXISTS {db}.control_decisions
(
    tenant_id                         LowCardinality(String),
    project_id                        LowCardinality(String),
    id                                String,
    decided_at                        DateTime64(3, 'UTC'),
    received_at                       DateTime64(3, 'UTC'),
    source                            LowCardinality(String),
    decision                          LowCardinality(String),
    requested_model                   LowCardinality(String),
    target_model                      LowCardinality(String),
    rule_id                           String,
    reason                            LowCardinality(String),
    action                            LowCardinality(String),
    dry_run                           Bool,
    config_type                       LowCardinality(String),
    status                            LowCardinality(String),
    loadbalance_rule_id               String,
    ratelimit_rule_id                 String,
    budget_rule_id                    String,
    loadbalance_target_attempt_count  UInt16,
    retry_depth                       UInt16,
    cascade_depth                     UInt16,
    would_decision                    LowCardinality(String),
    would_target_model                String,
    request_id                        String,
    metadata                          String,
    INDEX idx_id id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(received_at)
PARTITION BY toYYYYMM(received_at)
ORDER BY (tenant_id, project_id, toDate(decided_at), id)
TTL toDateTime(received_at) + toIntervalDay(90);
