"""``python -m alerter``: run the alerter alone (distributed mode). SIGTERM stops it cleanly."""

from __future__ import annotations

from aiohttp import web

from alerter.app import create_app
from alerter.settings import AlerterSettings
from trulayer_common.logging import configure_logging
from trulayer_common.runtime import new_event_loop, settle_gc_after_startup


def main() -> None:
    settings = AlerterSettings()
    configure_logging(settings.log_level, settings.log_json)
    web.run_app(
        settle_gc_after_startup(create_app(settings)),
        host=settings.alerter_host,
        port=settings.alerter_port,
        access_log=None,
        loop=new_event_loop(),
    )


if __name__ == "__main__":
    main()
