"""``python -m alerter``: run the alerter alone (distributed mode). SIGTERM stops it cleanly."""

from __future__ import annotations

from aiohttp import web

from alerter.app import create_app
from alerter.settings import AlerterSettings
from trulayer_common.logging import configure_logging
from trulayer_common.runtime import new_event_loop, settle_gc_after_startup
from trulayer_common.settings import load_settings, refuse


def main() -> None:
    settings = load_settings(AlerterSettings)
    try:
        settings.secret_box()  # webhook secrets are sealed with it
    except ValueError as exc:
        refuse(str(exc))
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
