"""``python -m eval_engine``: run the eval-engine alone (distributed mode). SIGTERM stops it
cleanly: running evaluations finish (bounded), what is durable is committed."""

from __future__ import annotations

from aiohttp import web

from eval_engine.app import create_app
from eval_engine.settings import EvalEngineSettings
from trulayer_common.logging import configure_logging
from trulayer_common.runtime import new_event_loop, settle_gc_after_startup


def main() -> None:
    settings = EvalEngineSettings()
    configure_logging(settings.log_level, settings.log_json)
    web.run_app(
        settle_gc_after_startup(create_app(settings)),
        host=settings.eval_engine_host,
        port=settings.eval_engine_port,
        access_log=None,
        loop=new_event_loop(),
    )


if __name__ == "__main__":
    main()
