"""``python -m control_engine``: run the control-engine alone (distributed mode)."""

from __future__ import annotations

from aiohttp import web

from control_engine.app import create_app
from control_engine.settings import ControlEngineSettings
from trulayer_common.logging import configure_logging
from trulayer_common.runtime import new_event_loop, settle_gc_after_startup
from trulayer_common.settings import load_settings, refuse


def main() -> None:
    settings = load_settings(ControlEngineSettings)
    if settings.internal_token is None:
        refuse(
            "INTERNAL_TOKEN is required when the control-engine runs on its own (distributed mode): "
            "set the same random value (openssl rand -hex 32) on the gateway and the control-engine"
        )
    try:
        settings.secret_box()  # webhook secrets are sealed with it
    except ValueError as exc:
        refuse(str(exc))
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
