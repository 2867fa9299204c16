"""The ingest-worker: consumes ``trulayer.traces`` and writes ClickHouse, committing after the write."""
