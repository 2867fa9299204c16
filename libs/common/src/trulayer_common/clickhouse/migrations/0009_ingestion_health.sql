-- Ingestion health (issue 13, GET /v1/ingestion-health).
--
-- ingest_health_minute: per tenant × project × minute of storage, the traces stored, the
-- histogram of their ingest lag (received by the gateway → stored; the bucket of
-- gateway.query.histogram, in milliseconds) and the newest receipt time. Filled by a view on
-- every insert into traces: now64() is the time of that insert. Only new inserts are counted
-- (the storage time of rows stored before this migration is not known).
--
-- dead_letters: what reached trulayer.dlq, with the tenant and project of the record when it
-- could be read (written by the ingest-worker's dead-letter writer; '' when unreadable), keyed
-- by the dead letter's origin so a redelivery replaces itself.

CREATE TABLE IF NOT EXISTS {db}.ingest_health_minute
(
    tenant_id     LowCardinality(String),
    bucket        DateTime('UTC'),
    project_id    LowCardinality(String),
    traces        SimpleAggregateFunction(sum, UInt64),
    lag_bins      SimpleAggregateFunction(sumMap, Map(Int32, UInt64)),
    lag_max       SimpleAggregateFunction(max, Float64),
    last_received SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, bucket, project_id)
TTL bucket + toIntervalDay(31);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.ingest_health_minute_mv TO {db}.ingest_health_minute AS
SELECT
    tenant_id,
    toStartOfMinute(now()) AS bucket,
    project_id,
    count() AS traces,
    sumMap(map(if(greatest(toFloat64(dateDiff('millisecond', created_at, now64(3))), 0) > 0, toInt32(ceil(log(greatest(toFloat64(dateDiff('millisecond', created_at, now64(3))), 0)) / log(1.01 / 0.99))), toInt32(-2147483648)), toUInt64(1))) AS lag_bins,
    max(greatest(toFloat64(dateDiff('millisecond', created_at, now64(3))), 0)) AS lag_max,
    max(created_at) AS last_received
FROM {db}.traces
GROUP BY tenant_id, project_id;

CREATE TABLE IF NOT EXISTS {db}.dead_letters
(
    tenant_id        LowCardinality(String),
    project_id       LowCardinality(String),
    source_topic     LowCardinality(String),
    source_partition UInt32,
    source_offset    UInt64,
    error            String,
    dead_at          DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(dead_at)
PARTITION BY toYYYYMM(dead_at)
ORDER BY (tenant_id, source_topic, source_partition, source_offset)
TTL toDateTime(dead_at) + toIntervalDay(30)
