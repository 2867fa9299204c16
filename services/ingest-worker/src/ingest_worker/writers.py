"""The ingest-worker's writers: one batching consumer loop each (``trulayer_common.consumer``),
defined by a topic, a consumer group, a pure transform and the tables it writes.

* traces: ``trulayer.traces`` → ``traces``, ``spans``, ``events`` (:mod:`ingest_worker.rows`),
  batched by trace count and time (``BATCH_MAX_TRACES``, ``BATCH_MAX_WAIT_MS``); a record heavy
  with spans and events counts a tenth of its rows if that is more, so that one batch holds at
  most 10 × ``BATCH_MAX_TRACES`` rows (its memory is bounded whatever the traces carry). The
  trace rows of OTLP traces are derived from their stored spans after each write
  (:mod:`ingest_worker.trace_parts`).
* alerts: ``trulayer.alerts`` → ``alert_events``, ``webhook_deliveries``, ``anomalies``, each
  record to the table of its kind (``topics.alerts.table_row``), on a group of its own so the
  trace path never waits for it.
* feedback: ``trulayer.feedback`` → ``feedback``; evaluations: ``trulayer.eval.results`` →
  ``evaluations`` (:mod:`ingest_worker.quality_rows`), each on a group of its own.
* dead letters: ``trulayer.dlq`` → ``dead_letters`` (:mod:`ingest_worker.dead_letter_rows`), for
  the ingestion health of each tenant.
* decisions: ``trulayer.control.decisions`` → ``control_decisions``
  (:mod:`ingest_worker.decision_rows`), on a group of its own, batched by decision count.

With a :class:`~trulayer_common.live.LivePublisher`, the trace writer announces the traces of
each stored batch (OTLP traces as derived) to the live tail.

A writer of a later topic is a transform and a table.
"""

from __future__ import annotations

from ingest_worker.dead_letter_rows import dead_letter_rows
from ingest_worker.decision_rows import decision_rows
from ingest_worker.quality_rows import evaluation_rows, feedback_rows
from ingest_worker.rows import INSERT_SETTINGS, to_rows
from ingest_worker.settings import IngestWorkerSettings
from ingest_worker.trace_parts import TracePartSink
from trulayer_common.clickhouse import ClickHouse
from trulayer_common.clickhouse.table_sink import TableRows, TableSink
from trulayer_common.consumer import BatchingConsumer, BatchPolicy, Record
from trulayer_common.live import LivePublisher
from trulayer_common.topics import alerts, control_decisions, dlq, eval_results, feedback, traces

TableWriter = BatchingConsumer[TableRows]
ROWS_PER_TRACE_UNIT = 10


def trace_writer(
    settings: IngestWorkerSettings, clickhouse: ClickHouse, live: LivePublisher | None = None
) -> TableWriter:
    default_days = settings.default_retention_days

    def transform(record: Record) -> TableRows:
        return to_rows(traces.decode(record.value), default_days)

    sink = TracePartSink(
        clickhouse,
        counted_table="traces",
        rows_per_unit=ROWS_PER_TRACE_UNIT,
        insert_settings=INSERT_SETTINGS,
        written_last="traces",
        announce=live.publish if live is not None else None,
    )
    return BatchingConsumer(
        settings,
        name="traces",
        topic=traces.TOPIC,
        group_id=settings.worker_group_id,
        transform=transform,
        sink=sink,
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


def decisions_rows(record: Record) -> TableRows:
    return decision_rows(control_decisions.decode(record.value))


def decisions_writer(settings: IngestWorkerSettings, clickhouse: ClickHouse) -> TableWriter:
    return BatchingConsumer(
        settings,
        name="decisions",
        topic=control_decisions.TOPIC,
        group_id=f"{settings.worker_group_id}-decisions",
        transform=decisions_rows,
        sink=TableSink(clickhouse),
        policy=BatchPolicy(max_size=20_000, max_wait_ms=300, dlq_max_per_minute=settings.dlq_max_per_minute),
    )


def feedback_writer(settings: IngestWorkerSettings, clickhouse: ClickHouse) -> TableWriter:
    days = settings.default_retention_days
    return BatchingConsumer(
        settings,
        name="feedback",
        topic=feedback.TOPIC,
        group_id=f"{settings.worker_group_id}-feedback",
        transform=lambda record: feedback_rows(record.value, days),
        sink=TableSink(clickhouse, insert_settings=INSERT_SETTINGS),
        policy=BatchPolicy(max_size=5_000, max_wait_ms=200, dlq_max_per_minute=settings.dlq_max_per_minute),
    )


def evaluations_writer(settings: IngestWorkerSettings, clickhouse: ClickHouse) -> TableWriter:
    """Sized like the trace writer's batches: an eval rule at sample rate 1.0 sees every trace."""
    days = settings.default_retention_days
    return BatchingConsumer(
        settings,
        name="evaluations",
        topic=eval_results.TOPIC,
        group_id=f"{settings.worker_group_id}-evaluations",
        transform=lambda record: evaluation_rows(record.value, days),
        sink=TableSink(clickhouse, insert_settings=INSERT_SETTINGS),
        policy=BatchPolicy(
            max_size=settings.batch_max_traces,
            max_wait_ms=settings.batch_max_wait_ms,
            dlq_max_per_minute=settings.dlq_max_per_minute,
        ),
    )


def dead_letters_writer(settings: IngestWorkerSettings, clickhouse: ClickHouse) -> TableWriter:
    """Reads the dead-letter topic into ``dead_letters``; its transform never refuses a record."""
    return BatchingConsumer(
        settings,
        name="dead_letters",
        topic=dlq.TOPIC,
        group_id=f"{settings.worker_group_id}-dead-letters",
        transform=dead_letter_rows,
        sink=TableSink(clickhouse),
        policy=BatchPolicy(max_size=1_000, max_wait_ms=500, dlq_max_per_minute=settings.dlq_max_per_minute),
    )
