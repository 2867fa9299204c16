-- The read path at scale (issue 10): traces sorted for time-bounded reads, and rollups.
--
-- 1. traces are sorted by (tenant, hour of started_at, project, id) instead of (tenant, project,
--    day, id), with a minmax index on started_at (parts are written in time order, so the newest
--    seconds are found without reading the whole hour until merges mix them). Every read of the API is bounded in time or narrowed to a window first (the list
--    reads the newest hours that hold a page, aggregates read rollups and only the edges of a
--    window raw): an hour-first key lets a window of minutes read minutes of data instead of a
--    day per project, and makes (tenant, hour, project, id) a point lookup. A trace id and its
--    started_at are fixed by the gateway before the record is produced, so a redelivered
--    record still has the same key and FINAL still collapses it.
--
-- 2. Rollups fed by materialized views on every insert into traces (tenant × project × model ×
--    status × failure type, per minute and per hour; the same per declared metadata entry):
--    counts, exact sums (integers in units of 10⁻⁹, each value rounded to 9 decimals: a sum of
--    rollup rows and a sum of raw rows are then the same number, whatever the order of
--    addition, where Float64 sums would differ in their last bits), min, max, and a
--    log-bucketed histogram per numeric column (a DDSketch without collapsing: bucket
--    ceil(log(x) / log(γ)), γ = 1.01 / 0.99, zero in bucket -2147483648; any quantile read from
--    it is within 1 % of the true value, and histograms add up exactly). The read layer
--    (trulayer_common.reads) computes the same partial aggregates from raw rows for the edges of
--    a window, so an answer served from rollups equals the raw answer.
--    Rows keep the receipt day and the retention of their traces, so they expire with them,
--    and are partitioned by it like the traces (0004): an insert touches one or two
--    partitions whatever times a tenant's traces carry.
--    Each minute rollup feeds its hour rollup (a view on the minute table).
--
-- 3. The metadata rollup holds the top-level metadata entries whose key is a declared
--    dimension (`metadata_rollup_keys`: env, team, feature, ... by default): low-cardinality
--    keys a dashboard groups by. A key with a value per user or per request would make the
--    rollup as large as the traces themselves (measured: 9.4 million rows for 10 million
--    traces with a user_id), so undeclared keys are read raw. A key declared later is rolled up
--    from then on (`since`); the read layer uses the rollup for it only where it is complete.
--
-- 4. The rollups are filled from the rows already stored (FINAL: each trace once). As with
--    REBUILD, stop the writers during the upgrade (the set-up job runs before them); the
--    statements are idempotent: the fill empties the rollups first.

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
    INDEX idx_model model TYPE set(256) GRANULARITY 4,
    INDEX idx_started started_at TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree(created_at)
PARTITION BY toYYYYMM(created_at)
ORDER BY (tenant_id, toStartOfHour(started_at), project_id, id)
TTL toDateTime(created_at) + toIntervalDay(retention_days);

CREATE TABLE IF NOT EXISTS {db}.trace_rollup_minute
(
    tenant_id             LowCardinality(String),
    bucket                DateTime('UTC'),
    project_id            LowCardinality(String),
    model                 LowCardinality(String),
    status                LowCardinality(String),
    failure_type          LowCardinality(String),
    received_date         Date,
    retention_days        UInt16,
    traces                SimpleAggregateFunction(sum, Int64),
    latency_count         SimpleAggregateFunction(sum, Int64),
    latency_sum           SimpleAggregateFunction(sum, Int128),
    latency_min           SimpleAggregateFunction(min, Nullable(Float64)),
    latency_max           SimpleAggregateFunction(max, Nullable(Float64)),
    latency_bins          SimpleAggregateFunction(sumMap, Map(Int32, Int64)),
    cost_count            SimpleAggregateFunction(sum, Int64),
    cost_sum              SimpleAggregateFunction(sum, Int128),
    cost_min              SimpleAggregateFunction(min, Nullable(Float64)),
    cost_max              SimpleAggregateFunction(max, Nullable(Float64)),
    cost_bins             SimpleAggregateFunction(sumMap, Map(Int32, Int64)),
    prompt_tokens_sum     SimpleAggregateFunction(sum, Int128),
    prompt_tokens_min     SimpleAggregateFunction(min, Nullable(Float64)),
    prompt_tokens_max     SimpleAggregateFunction(max, Nullable(Float64)),
    prompt_tokens_bins    SimpleAggregateFunction(sumMap, Map(Int32, Int64)),
    completion_tokens_sum SimpleAggregateFunction(sum, Int128),
    completion_tokens_min SimpleAggregateFunction(min, Nullable(Float64)),
    completion_tokens_max SimpleAggregateFunction(max, Nullable(Float64)),
    completion_tokens_bins SimpleAggregateFunction(sumMap, Map(Int32, Int64)),
    total_tokens_sum      SimpleAggregateFunction(sum, Int128),
    total_tokens_min      SimpleAggregateFunction(min, Nullable(Float64)),
    total_tokens_max      SimpleAggregateFunction(max, Nullable(Float64)),
    total_tokens_bins     SimpleAggregateFunction(sumMap, Map(Int32, Int64))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(received_date)
ORDER BY (tenant_id, bucket, project_id, model, status, failure_type, received_date, retention_days)
TTL received_date + toIntervalDay(retention_days);

CREATE TABLE IF NOT EXISTS {db}.trace_rollup_hour AS {db}.trace_rollup_minute;

CREATE TABLE IF NOT EXISTS {db}.metadata_rollup_keys
(
    meta_key String,
    since    DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY meta_key;

INSERT INTO {db}.metadata_rollup_keys (meta_key, since)
SELECT arrayJoin(['env', 'environment', 'team', 'feature', 'tier', 'region', 'app', 'version']), toDateTime64(0, 3, 'UTC');

CREATE TABLE IF NOT EXISTS {db}.trace_metadata_rollup_minute
(
    tenant_id             LowCardinality(String),
    meta_key              String,
    bucket                DateTime('UTC'),
    project_id            LowCardinality(String),
    model                 LowCardinality(String),
    status                LowCardinality(String),
    failure_type          LowCardinality(String),
    meta_value            String,
    received_date         Date,
    retention_days        UInt16,
    traces                SimpleAggregateFunction(sum, Int64),
    latency_count         SimpleAggregateFunction(sum, Int64),
    latency_sum           SimpleAggregateFunction(sum, Int128),
    latency_min           SimpleAggregateFunction(min, Nullable(Float64)),
    latency_max           SimpleAggregateFunction(max, Nullable(Float64)),
    latency_bins          SimpleAggregateFunction(sumMap, Map(Int32, Int64)),
    cost_count            SimpleAggregateFunction(sum, Int64),
    cost_sum              SimpleAggregateFunction(sum, Int128),
    cost_min              SimpleAggregateFunction(min, Nullable(Float64)),
    cost_max              SimpleAggregateFunction(max, Nullable(Float64)),
    cost_bins             SimpleAggregateFunction(sumMap, Map(Int32, Int64)),
    prompt_tokens_sum     SimpleAggregateFunction(sum, Int128),
    prompt_tokens_min     SimpleAggregateFunction(min, Nullable(Float64)),
    prompt_tokens_max     SimpleAggregateFunction(max, Nullable(Float64)),
    prompt_tokens_bins    SimpleAggregateFunction(sumMap, Map(Int32, Int64)),
    completion_tokens_sum SimpleAggregateFunction(sum, Int128),
    completion_tokens_min SimpleAggregateFunction(min, Nullable(Float64)),
    completion_tokens_max SimpleAggregateFunction(max, Nullable(Float64)),
    completion_tokens_bins SimpleAggregateFunction(sumMap, Map(Int32, Int64)),
    total_tokens_sum      SimpleAggregateFunction(sum, Int128),
    total_tokens_min      SimpleAggregateFunction(min, Nullable(Float64)),
    total_tokens_max      SimpleAggregateFunction(max, Nullable(Float64)),
    total_tokens_bins     SimpleAggregateFunction(sumMap, Map(Int32, Int64))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(received_date)
ORDER BY (tenant_id, meta_key, bucket, project_id, model, status, failure_type, meta_value, received_date, retention_days)
TTL received_date + toIntervalDay(retention_days);

CREATE TABLE IF NOT EXISTS {db}.trace_metadata_rollup_hour AS {db}.trace_metadata_rollup_minute;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.trace_rollup_minute_mv TO {db}.trace_rollup_minute AS
SELECT
    tenant_id, toStartOfMinute(started_at) AS bucket, project_id, model, status, failure_type,
    toDate(created_at) AS received_date, retention_days,
    count() AS traces,
    count(latency_ms) AS latency_count,
    sum(toInt128(round(ifNull(latency_ms, 0) * 1000000000))) AS latency_sum,
    min(latency_ms) AS latency_min,
    max(latency_ms) AS latency_max,
    sumMap(if(latency_ms IS NULL, CAST(map(), 'Map(Int32, UInt64)'), map(if(assumeNotNull(latency_ms) > 0, toInt32(ceil(log(assumeNotNull(latency_ms)) / log(1.01 / 0.99))), toInt32(-2147483648)), toUInt64(1)))) AS latency_bins,
    count(cost) AS cost_count,
    sum(toInt128(round(ifNull(cost, 0) * 1000000000))) AS cost_sum,
    min(cost) AS cost_min,
    max(cost) AS cost_max,
    sumMap(if(cost IS NULL, CAST(map(), 'Map(Int32, UInt64)'), map(if(assumeNotNull(cost) > 0, toInt32(ceil(log(assumeNotNull(cost)) / log(1.01 / 0.99))), toInt32(-2147483648)), toUInt64(1)))) AS cost_bins,
    sum(toInt128(prompt_tokens) * 1000000000) AS prompt_tokens_sum,
    min(toFloat64(prompt_tokens)) AS prompt_tokens_min,
    max(toFloat64(prompt_tokens)) AS prompt_tokens_max,
    sumMap(map(if(prompt_tokens > 0, toInt32(ceil(log(toFloat64(prompt_tokens)) / log(1.01 / 0.99))), toInt32(-2147483648)), toUInt64(1))) AS prompt_tokens_bins,
    sum(toInt128(completion_tokens) * 1000000000) AS completion_tokens_sum,
    min(toFloat64(completion_tokens)) AS completion_tokens_min,
    max(toFloat64(completion_tokens)) AS completion_tokens_max,
    sumMap(map(if(completion_tokens > 0, toInt32(ceil(log(toFloat64(completion_tokens)) / log(1.01 / 0.99))), toInt32(-2147483648)), toUInt64(1))) AS completion_tokens_bins,
    sum(toInt128(total_tokens) * 1000000000) AS total_tokens_sum,
    min(toFloat64(total_tokens)) AS total_tokens_min,
    max(toFloat64(total_tokens)) AS total_tokens_max,
    sumMap(map(if(total_tokens > 0, toInt32(ceil(log(toFloat64(total_tokens)) / log(1.01 / 0.99))), toInt32(-2147483648)), toUInt64(1))) AS total_tokens_bins
FROM {db}.traces
GROUP BY tenant_id, bucket, project_id, model, status, failure_type, received_date, retention_days;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.trace_rollup_hour_mv TO {db}.trace_rollup_hour AS
SELECT
    tenant_id, toStartOfHour(bucket) AS bucket, project_id, model, status, failure_type, received_date, retention_days,
    sum(traces) AS traces,
    sum(latency_count) AS latency_count, sum(latency_sum) AS latency_sum,
    min(latency_min) AS latency_min, max(latency_max) AS latency_max, sumMap(latency_bins) AS latency_bins,
    sum(cost_count) AS cost_count, sum(cost_sum) AS cost_sum,
    min(cost_min) AS cost_min, max(cost_max) AS cost_max, sumMap(cost_bins) AS cost_bins,
    sum(prompt_tokens_sum) AS prompt_tokens_sum, min(prompt_tokens_min) AS prompt_tokens_min,
    max(prompt_tokens_max) AS prompt_tokens_max, sumMap(prompt_tokens_bins) AS prompt_tokens_bins,
    sum(completion_tokens_sum) AS completion_tokens_sum, min(completion_tokens_min) AS completion_tokens_min,
    max(completion_tokens_max) AS completion_tokens_max, sumMap(completion_tokens_bins) AS completion_tokens_bins,
    sum(total_tokens_sum) AS total_tokens_sum, min(total_tokens_min) AS total_tokens_min,
    max(total_tokens_max) AS total_tokens_max, sumMap(total_tokens_bins) AS total_tokens_bins
FROM {db}.trace_rollup_minute
GROUP BY tenant_id, bucket, project_id, model, status, failure_type, received_date, retention_days;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.trace_metadata_rollup_minute_mv TO {db}.trace_metadata_rollup_minute AS
SELECT
    tenant_id, entry.1 AS meta_key, toStartOfMinute(started_at) AS bucket, project_id, model, status, failure_type,
    if(startsWith(entry.2, '"'), JSONExtractString(entry.2), entry.2) AS meta_value,
    toDate(created_at) AS received_date, retention_days,
    count() AS traces,
    count(latency_ms) AS latency_count,
    sum(toInt128(round(ifNull(latency_ms, 0) * 1000000000))) AS latency_sum,
    min(latency_ms) AS latency_min,
    max(latency_ms) AS latency_max,
    sumMap(if(latency_ms IS NULL, CAST(map(), 'Map(Int32, UInt64)'), map(if(assumeNotNull(latency_ms) > 0, toInt32(ceil(log(assumeNotNull(latency_ms)) / log(1.01 / 0.99))), toInt32(-2147483648)), toUInt64(1)))) AS latency_bins,
    count(cost) AS cost_count,
    sum(toInt128(round(ifNull(cost, 0) * 1000000000))) AS cost_sum,
    min(cost) AS cost_min,
    max(cost) AS cost_max,
    sumMap(if(cost IS NULL, CAST(map(), 'Map(Int32, UInt64)'), map(if(assumeNotNull(cost) > 0, toInt32(ceil(log(assumeNotNull(cost)) / log(1.01 / 0.99))), toInt32(-2147483648)), toUInt64(1)))) AS cost_bins,
    sum(toInt128(prompt_tokens) * 1000000000) AS prompt_tokens_sum,
    min(toFloat64(prompt_tokens)) AS prompt_tokens_min,
    max(toFloat64(prompt_tokens)) AS prompt_tokens_max,
    sumMap(map(if(prompt_tokens > 0, toInt32(ceil(log(toFloat64(prompt_tokens)) / log(1.01 / 0.99))), toInt32(-2147483648)), toUInt64(1))) AS prompt_tokens_bins,
    sum(toInt128(completion_tokens) * 1000000000) AS completion_tokens_sum,
    min(toFloat64(completion_tokens)) AS completion_tokens_min,
    max(toFloat64(completion_tokens)) AS completion_tokens_max,
    sumMap(map(if(completion_tokens > 0, toInt32(ceil(log(toFloat64(completion_tokens)) / log(1.01 / 0.99))), toInt32(-2147483648)), toUInt64(1))) AS completion_tokens_bins,
    sum(toInt128(total_tokens) * 1000000000) AS total_tokens_sum,
    min(toFloat64(total_tokens)) AS total_tokens_min,
    max(toFloat64(total_tokens)) AS total_tokens_max,
    sumMap(map(if(total_tokens > 0, toInt32(ceil(log(toFloat64(total_tokens)) / log(1.01 / 0.99))), toInt32(-2147483648)), toUInt64(1))) AS total_tokens_bins
FROM {db}.traces
ARRAY JOIN arrayFilter(kv -> kv.2 != 'null', JSONExtractKeysAndValuesRaw(metadata)) AS entry
WHERE entry.1 IN (SELECT meta_key FROM {db}.metadata_rollup_keys)
GROUP BY tenant_id, meta_key, bucket, project_id, model, status, failure_type, meta_value, received_date, retention_days;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.trace_metadata_rollup_hour_mv TO {db}.trace_metadata_rollup_hour AS
SELECT
    tenant_id, meta_key, toStartOfHour(bucket) AS bucket, project_id, model, status, failure_type, meta_value,
    received_date, retention_days,
    sum(traces) AS traces,
    sum(latency_count) AS latency_count, sum(latency_sum) AS latency_sum,
    min(latency_min) AS latency_min, max(latency_max) AS latency_max, sumMap(latency_bins) AS latency_bins,
    sum(cost_count) AS cost_count, sum(cost_sum) AS cost_sum,
    min(cost_min) AS cost_min, max(cost_max) AS cost_max, sumMap(cost_bins) AS cost_bins,
    sum(prompt_tokens_sum) AS prompt_tokens_sum, min(prompt_tokens_min) AS prompt_tokens_min,
    max(prompt_tokens_max) AS prompt_tokens_max, sumMap(prompt_tokens_bins) AS prompt_tokens_bins,
    sum(completion_tokens_sum) AS completion_tokens_sum, min(completion_tokens_min) AS completion_tokens_min,
    max(completion_tokens_max) AS completion_tokens_max, sumMap(completion_tokens_bins) AS completion_tokens_bins,
    sum(total_tokens_sum) AS total_tokens_sum, min(total_tokens_min) AS total_tokens_min,
    max(total_tokens_max) AS total_tokens_max, sumMap(total_tokens_bins) AS total_tokens_bins
FROM {db}.trace_metadata_rollup_minute
GROUP BY tenant_id, meta_key, bucket, project_id, model, status, failure_type, meta_value, received_date, retention_days;


-- Superseded versions of a trace (the ingest-worker writes the stored version here before it
-- inserts a newer one: OTLP traces assembled from several exports). A Null table: nothing is
-- stored, the views below subtract the version from the rollups (min and max cannot be).
CREATE TABLE IF NOT EXISTS {db}.trace_rollup_retractions
(
    tenant_id         LowCardinality(String),
    project_id        LowCardinality(String),
    id                String,
    model             LowCardinality(String),
    status            LowCardinality(String),
    failure_type      LowCardinality(String),
    metadata          String,
    started_at        DateTime64(3, 'UTC'),
    created_at        DateTime64(3, 'UTC'),
    retention_days    UInt16,
    latency_ms        Nullable(Float64),
    cost              Nullable(Float64),
    prompt_tokens     UInt64,
    completion_tokens UInt64,
    total_tokens      UInt64
)
ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.trace_rollup_retraction_mv TO {db}.trace_rollup_minute AS
SELECT
    tenant_id, toStartOfMinute(started_at) AS bucket, project_id, model, status, failure_type,
    toDate(created_at) AS received_date, retention_days,
    -toInt64(count()) AS traces,
    -toInt64(count(latency_ms)) AS latency_count,
    -sum(toInt128(round(ifNull(latency_ms, 0) * 1000000000))) AS latency_sum,
    CAST(NULL AS Nullable(Float64)) AS latency_min,
    CAST(NULL AS Nullable(Float64)) AS latency_max,
    mapApply((k, v) -> (k, -v), CAST(sumMap(if(latency_ms IS NULL, CAST(map(), 'Map(Int32, UInt64)'), map(if(assumeNotNull(latency_ms) > 0, toInt32(ceil(log(assumeNotNull(latency_ms)) / log(1.01 / 0.99))), toInt32(-2147483648)), toUInt64(1)))) AS Map(Int32, Int64))) AS latency_bins,
    -toInt64(count(cost)) AS cost_count,
    -sum(toInt128(round(ifNull(cost, 0) * 1000000000))) AS cost_sum,
    CAST(NULL AS Nullable(Float64)) AS cost_min,
    CAST(NULL AS Nullable(Float64)) AS cost_max,
    mapApply((k, v) -> (k, -v), CAST(sumMap(if(cost IS NULL, CAST(map(), 'Map(Int32, UInt64)'), map(if(assumeNotNull(cost) > 0, toInt32(ceil(log(assumeNotNull(cost)) / log(1.01 / 0.99))), toInt32(-2147483648)), toUInt64(1)))) AS Map(Int32, Int64))) AS cost_bins,
    -sum(toInt128(prompt_tokens) * 1000000000) AS prompt_tokens_sum,
    CAST(NULL AS Nullable(Float64)) AS prompt_tokens_min,
    CAST(NULL AS Nullable(Float64)) AS prompt_tokens_max,
    mapApply((k, v) -> (k, -v), CAST(sumMap(map(if(prompt_tokens > 0, toInt32(ceil(log(toFloat64(prompt_tokens)) / log(1.01 / 0.99))), toInt32(-2147483648)), toUInt64(1))) AS Map(Int32, Int64))) AS prompt_tokens_bins,
    -sum(toInt128(completion_tokens) * 1000000000) AS completion_tokens_sum,
    CAST(NULL AS Nullable(Float64)) AS completion_tokens_min,
    CAST(NULL AS Nullable(Float64)) AS completion_tokens_max,
    mapApply((k, v) -> (k, -v), CAST(sumMap(map(if(completion_tokens > 0, toInt32(ceil(log(toFloat64(completion_tokens)) / log(1.01 / 0.99))), toInt32(-2147483648)), toUInt64(1))) AS Map(Int32, Int64))) AS completion_tokens_bins,
    -sum(toInt128(total_tokens) * 1000000000) AS total_tokens_sum,
    CAST(NULL AS Nullable(Float64)) AS total_tokens_min,
    CAST(NULL AS Nullable(Float64)) AS total_tokens_max,
    mapApply((k, v) -> (k, -v), CAST(sumMap(map(if(total_tokens > 0, toInt32(ceil(log(toFloat64(total_tokens)) / log(1.01 / 0.99))), toInt32(-2147483648)), toUInt64(1))) AS Map(Int32, Int64))) AS total_tokens_bins
FROM {db}.trace_rollup_retractions
GROUP BY tenant_id, bucket, project_id, model, status, failure_type, received_date, retention_days;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.trace_metadata_rollup_retraction_mv TO {db}.trace_metadata_rollup_minute AS
SELECT
    tenant_id, entry.1 AS meta_key, toStartOfMinute(started_at) AS bucket, project_id, model, status, failure_type,
    if(startsWith(entry.2, '"'), JSONExtractString(entry.2), entry.2) AS meta_value,
    toDate(created_at) AS received_date, retention_days,
    -toInt64(count()) AS traces,
    -toInt64(count(latency_ms)) AS latency_count,
    -sum(toInt128(round(ifNull(latency_ms, 0) * 1000000000))) AS latency_sum,
    CAST(NULL AS Nullable(Float64)) AS latency_min,
    CAST(NULL AS Nullable(Float64)) AS latency_max,
    mapApply((k, v) -> (k, -v), CAST(sumMap(if(latency_ms IS NULL, CAST(map(), 'Map(Int32, UInt64)'), map(if(assumeNotNull(latency_ms) > 0, toInt32(ceil(log(assumeNotNull(latency_ms)) / log(1.01 / 0.99))), toInt32(-2147483648)), toUInt64(1)))) AS Map(Int32, Int64))) AS latency_bins,
    -toInt64(count(cost)) AS cost_count,
    -sum(toInt128(round(ifNull(cost, 0) * 1000000000))) AS cost_sum,
    CAST(NULL AS Nullable(Float64)) AS cost_min,
    CAST(NULL AS Nullable(Float64)) AS cost_max,
    mapApply((k, v) -> (k, -v), CAST(sumMap(if(cost IS NULL, CAST(map(), 'Map(Int32, UInt64)'), map(if(assumeNotNull(cost) > 0, toInt32(ceil(log(assumeNotNull(cost)) / log(1.01 / 0.99))), toInt32(-2147483648)), toUInt64(1)))) AS Map(Int32, Int64))) AS cost_bins,
    -sum(toInt128(prompt_tokens) * 1000000000) AS prompt_tokens_sum,
    CAST(NULL AS Nullable(Float64)) AS prompt_tokens_min,
    CAST(NULL AS Nullable(Float64)) AS prompt_tokens_max,
    mapApply((k, v) -> (k, -v), CAST(sumMap(map(if(prompt_tokens > 0, toInt32(ceil(log(toFloat64(prompt_tokens)) / log(1.01 / 0.99))), toInt32(-2147483648)), toUInt64(1))) AS Map(Int32, Int64))) AS prompt_tokens_bins,
    -sum(toInt128(completion_tokens) * 1000000000) AS completion_tokens_sum,
    CAST(NULL AS Nullable(Float64)) AS completion_tokens_min,
    CAST(NULL AS Nullable(Float64)) AS completion_tokens_max,
    mapApply((k, v) -> (k, -v), CAST(sumMap(map(if(completion_tokens > 0, toInt32(ceil(log(toFloat64(completion_tokens)) / log(1.01 / 0.99))), toInt32(-2147483648)), toUInt64(1))) AS Map(Int32, Int64))) AS completion_tokens_bins,
    -sum(toInt128(total_tokens) * 1000000000) AS total_tokens_sum,
    CAST(NULL AS Nullable(Float64)) AS total_tokens_min,
    CAST(NULL AS Nullable(Float64)) AS total_tokens_max,
    mapApply((k, v) -> (k, -v), CAST(sumMap(map(if(total_tokens > 0, toInt32(ceil(log(toFloat64(total_tokens)) / log(1.01 / 0.99))), toInt32(-2147483648)), toUInt64(1))) AS Map(Int32, Int64))) AS total_tokens_bins
FROM {db}.trace_rollup_retractions
ARRAY JOIN arrayFilter(kv -> kv.2 != 'null', JSONExtractKeysAndValuesRaw(metadata)) AS entry
WHERE entry.1 IN (SELECT meta_key FROM {db}.metadata_rollup_keys)
GROUP BY tenant_id, meta_key, bucket, project_id, model, status, failure_type, meta_value, received_date, retention_days;

REFILL VIEW {db}.trace_rollup_minute_mv;

REFILL VIEW {db}.trace_metadata_rollup_minute_mv
