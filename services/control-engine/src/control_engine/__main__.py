"""``python -m control_engine``: run the control-engine alone (distributed mode)."""

from __future__ import annotations

from aiohttp import web

from control_engine.app import create_app
from control_engine.settings import ControlEngineSettings
from trulayer_common.logging import configure_logging
from trulayer_common.runtime import new_event_loop, settle_gc_after_startup


def main() -> None:
    settings = ControlEngineSettings()
    configure_logging(settings.log_level, settings.log_json)
    web.run_app(
        settle_gc_after_startup(create_app(settings)),
        host=settings.control_host,
        port=settings.control_port,
        access_log=None,
        loop=new_event_loop(),
    )


if __name__ == "__main__":
    main()
