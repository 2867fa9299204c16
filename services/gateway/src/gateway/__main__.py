"""``python -m gateway``: run the gateway alone (distributed mode)."""

from __future__ import annotations

from aiohttp import web

from gateway.app import create_app
from gateway.settings import GatewaySettings
from trulayer_common.logging import configure_logging
from trulayer_common.runtime import new_event_loop, settle_gc_after_startup
from trulayer_common.settings import load_settings, refuse


def main() -> None:
    settings = load_settings(GatewaySettings)
    if settings.internal_token is None:
        refuse(
            "INTERNAL_TOKEN is required when the gateway runs on its own (distributed mode): "
            "set the same random value (openssl rand -hex 32) on the gateway and the control-engine"
        )
    configure_logging(settings.log_level, settings.log_json)
    web.run_app(
        settle_gc_after_startup(create_app(settings)),
        host=settings.gateway_host,
        port=settings.gateway_port,
        access_log=None,
        loop=new_event_loop(),
    )


if __name__ == "__main__":
    main()
