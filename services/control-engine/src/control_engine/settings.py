"""Control-engine settings (environment only)."""

from __future__ import annotations

from trulayer_common.settings import ServiceSettings


class ControlEngineSettings(ServiceSettings):
    service_name: str = "control-engine"
    control_host: str = "127.0.0.1"
    control_port: int = 8081
