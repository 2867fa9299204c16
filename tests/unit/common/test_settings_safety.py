"""Unsafe configurations are refused at start with a clear message (issue 15, finding 11), and
every Kafka client gets the cluster's security settings (finding 10)."""

from __future__ import annotations

import ssl
import subprocess
import sys

import faust
import pytest
from pydantic import ValidationError

from alerter.settings import AlerterSettings
from alerter.streams import broker_credentials
from control_engine.settings import ControlEngineSettings
from gateway.settings import GatewaySettings
from trulayer_common.kafka import client_security, topic_config
from trulayer_common.secret_box import generate_key_spec
from trulayer_common.settings import ServiceSettings
from trulayer_common.topics import TopicSpec

GOOD = "0f3c9a1e5b7d4c2a8e6f1b3d5a7c9e0f2b4d6a8c"


@pytest.mark.parametrize(
    ("cls", "env", "message"),
    [
        (GatewaySettings, {"SESSION_HS256_SECRET": ""}, "SESSION_HS256_SECRET is set but empty"),
        (GatewaySettings, {"SESSION_HS256_SECRET": "   "}, "SESSION_HS256_SECRET is set but empty"),
        (ControlEngineSettings, {"SESSION_HS256_SECRET": "short"}, "SESSION_HS256_SECRET looks like a placeholder"),
        (GatewaySettings, {"INTERNAL_TOKEN": "change-me"}, "INTERNAL_TOKEN looks like a placeholder"),
        (ControlEngineSettings, {"INTERNAL_TOKEN": "change-me"}, "INTERNAL_TOKEN looks like a placeholder"),
        (
            ControlEngineSettings,
            {"INTERNAL_TOKEN": "change-me-to-a-long-random-value-0123456789"},
            "INTERNAL_TOKEN looks like a placeholder",
        ),
        (GatewaySettings, {"INTERNAL_TOKEN": "a" * 64}, "INTERNAL_TOKEN looks like a placeholder"),
        (
            GatewaySettings,
            {"SESSION_JWKS_URL": "https://idp.example/jwks"},
            "needs SESSION_ISSUER and SESSION_AUDIENCE",
        ),
        (
            GatewaySettings,
            {"SESSION_JWKS_URL": "https://idp.example/jwks", "SESSION_ISSUER": "https://idp.example/"},
            "needs SESSION_ISSUER and SESSION_AUDIENCE",
        ),
        (ServiceSettings, {"KAFKA_MIN_INSYNC_REPLICAS": "2"}, "must not exceed KAFKA_REPLICATION_FACTOR"),
        (ServiceSettings, {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "needs KAFKA_SASL_MECHANISM"),
        (ServiceSettings, {"KAFKA_SASL_MECHANISM": "PLAIN"}, "KAFKA_SECURITY_PROTOCOL is not SASL"),
        (ServiceSettings, {"EGRESS_ALLOWLIST": "10.0.0.0/8, not a host"}, "neither a CIDR nor a host name"),
        (ServiceSettings, {"CONFIG_SECRET_KEYS": "k1:c2hvcnQ"}, "must be 32 bytes"),
    ],
)
def test_unsafe_settings_are_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, cls: type[ServiceSettings], env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        cls()


def test_safe_settings_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERNAL_TOKEN", GOOD)
    monkeypatch.setenv("SESSION_HS256_SECRET", GOOD[::-1])
    monkeypatch.setenv("SESSION_JWKS_URL", "https://idp.example/jwks")
    monkeypatch.setenv("SESSION_ISSUER", "https://idp.example/")
    monkeypatch.setenv("SESSION_AUDIENCE", "trulayer")
    monkeypatch.setenv("CONFIG_SECRET_KEYS", generate_key_spec("k2") + "," + generate_key_spec("k1"))
    settings = GatewaySettings()
    assert settings.internal_token is not None and settings.secret_box().current == "k2"


def test_a_service_started_with_a_placeholder_token_exits_with_a_message() -> None:
    """``python -m control_engine`` as the k8s manifest once shipped it: refused before anything starts."""
    env = {"INTERNAL_TOKEN": "change-me", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "control_engine"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert "INTERNAL_TOKEN" in done.stderr and "placeholder" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_control_engine_alone_needs_an_internal_token() -> None:
    env = {"PATH": "/usr/bin:/bin", "CONFIG_SECRET_KEYS": generate_key_spec()}
    done = subprocess.run(
        [sys.executable, "-m", "control_engine"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2 and "INTERNAL_TOKEN is required" in done.stderr


def test_every_kafka_client_gets_the_security_settings() -> None:
    plain = ServiceSettings()
    assert client_security(plain) == {"security_protocol": "PLAINTEXT"}
    sasl = ServiceSettings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="gateway",
        kafka_sasl_password="pw-from-a-secret",  # type: ignore[arg-type]
    )
    options = client_security(sasl)
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("gateway", "pw-from-a-secret")
    assert isinstance(options["ssl_context"], ssl.SSLContext) and options["ssl_context"].check_hostname
    credentials = broker_credentials(AlerterSettings(**sasl.model_dump()))
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.username == "gateway" and credentials.mechanism.value == "SCRAM-SHA-512"
    assert isinstance(broker_credentials(AlerterSettings(kafka_security_protocol="SSL")), faust.SSLCredentials)
    assert broker_credentials(AlerterSettings()) is None


def test_topics_are_created_with_the_replication_settings() -> None:
    settings = ServiceSettings(kafka_replication_factor=3, kafka_min_insync_replicas=2)
    assert topic_config(settings, TopicSpec("t", 1, {"cleanup.policy": "compact"})) == {
        "min.insync.replicas": "2",
        "cleanup.policy": "compact",
    }
