"""The ingest-worker's writers: one batching consumer loop each (``trulayer_common.consumer``),
defined by a topic, a consumer group, a pure transform and the tables it writes.

* traces: ``trulayer.traces`` → ``traces``, ``spans``, ``events`` (:mod:`ingest_worker.rows`),
  batched by trace count and time (``BATCH_MAX_TRACES``, ``BATCH_MAX_WAIT_MS``); a record heavy
  with spans and events counts a tenth of its rows if that is more, so that one batch holds at
  most 10 × ``BATCH_MAX_TRACES`` rows (its memory is bounded whatever the traces carry).
* alerts: ``trulayer.alerts`` → ``alert_events``, ``webhook_deliveries``, ``anomalies``, each
  record to the table of its kind (``topics.alerts.table_row``), on a group of its own so the
  trace path never waits for it.

The writers of later topics (feedback, evaluations, decisions) are a transform and a table each.
"""

from __future__ import annotations

from ingest_worker.rows import INSERT_SETTINGS, to_rows
from ingest_worker.settings import IngestWorkerSettings
from trulayer_common.clickhouse import ClickHouse
from trulayer_common.clickhouse.table_sink import TableRows, TableSink
from trulayer_common.consumer import BatchingConsumer, BatchPolicy, Record
from trulayer_common.topics import alerts, traces

TableWriter = BatchingConsumer[TableRows]
ROWS_PER_TRACE_UNIT = 10


def trace_writer(settings: IngestWorkerSettings, clickhouse: ClickHouse) -> TableWriter:
    default_days = settings.default_retention_days

    def transform(record: Record) -> TableRows:
        return to_rows(traces.decode(record.value), default_days)

    return BatchingConsumer(
        settings,
        name="traces",
        topic=traces.TOPIC,
        group_id=settings.worker_group_id,
        transform=transform,
        sink=TableSink(
            clickhouse, counted_table="traces", rows_per_unit=ROWS_PER_TRACE_UNIT, insert_settings=INSERT_SETTINGS
        ),
        policy=BatchPolicy(
            max_size=settings.batch_max_traces,
            max_wait_ms=settings.batch_max_wait_ms,
            dlq_max_per_minute=settings.dlq_max_per_minute,
        ),
    )


def alert_rows(record: Record) -> TableRows:
    table, row = alerts.table_row(alerts.decode(record.value).payload)
    return {table: [row]}


def alerts_writer(settings: IngestWorkerSettings, clickhouse: ClickHouse) -> TableWriter:
    return BatchingConsumer(
        settings,
        name="alerts",
        topic=alerts.TOPIC,
        group_id=f"{settings.worker_group_id}-alerts",
        transform=alert_rows,
        sink=TableSink(clickhouse),
        policy=BatchPolicy(max_size=5_000, max_wait_ms=200, dlq_max_per_minute=settings.dlq_max_per_minute),
    )
