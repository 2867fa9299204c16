"""``python -m ingest_worker``: run the worker alone (distributed mode). SIGTERM drains cleanly."""

from __future__ import annotations

from aiohttp import web

from ingest_worker.app import create_app
from ingest_worker.settings import IngestWorkerSettings
from trulayer_common.logging import configure_logging
from trulayer_common.runtime import new_event_loop, settle_gc_after_startup
from trulayer_common.settings import load_settings


def main() -> None:
    settings = load_settings(IngestWorkerSettings)
    configure_logging(settings.log_level, settings.log_json)
    # run_app turns SIGTERM/SIGINT into a graceful shutdown: cleanup_ctx stops the worker,
    # which writes and commits its batch before the process exits.
    web.run_app(
        settle_gc_after_startup(create_app(settings)),
        host=settings.worker_host,
        port=settings.worker_port,
        access_log=None,
        loop=new_event_loop(),
    )


if __name__ == "__main__":
    main()
