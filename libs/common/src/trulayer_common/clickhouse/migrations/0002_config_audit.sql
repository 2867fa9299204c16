-- Every configuration change the control-engine made: who, what, when. The config log is
-- compacted (it keeps only the latest state of each entity); this table keeps the history.
-- Plain MergeTree: each change is its own row, never replaced.

CREATE TABLE IF NOT EXISTS {db}.config_audit
(
    tenant_id   LowCardinality(String),
    at          DateTime64(3, 'UTC'),
    entity_kind LowCardinality(String),
    entity_id   String,
    action      LowCardinality(String),
    actor       String,
    request_id  String,
    state       String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (tenant_id, at, entity_kind, entity_id)
