"""The local stack's own configuration traps (issue 15, finding 11)."""

from __future__ import annotations

import re

import pytest

from control_engine.settings import ControlEngineSettings
from gateway.settings import GatewaySettings
from trulayer_local.infra import InfraError
from trulayer_local.stack import local_control_url


def test_the_gateway_follows_the_control_engines_port() -> None:
    control = ControlEngineSettings(control_port=9181)
    assert local_control_url(control, GatewaySettings()) == "http://127.0.0.1:9181"
    assert local_control_url(ControlEngineSettings(control_host="0.0.0.0", control_port=9182), GatewaySettings()) == (  # noqa: S104
        "http://127.0.0.1:9182"
    )
    same = GatewaySettings(control_engine_url="http://127.0.0.1:9181/")
    assert local_control_url(control, same) == "http://127.0.0.1:9181"


def test_an_explicit_url_elsewhere_is_refused() -> None:
    with pytest.raises(InfraError, match=re.escape("CONTROL_ENGINE_URL=http://127.0.0.1:8081 does not reach")):
        local_control_url(
            ControlEngineSettings(control_port=9181), GatewaySettings(control_engine_url="http://127.0.0.1:8081")
        )
