"""Service settings: environment variables only, validated at start, passed in explicitly.

Every service has one settings class deriving from :class:`ServiceSettings`; nothing reads
``os.environ`` anywhere else. Unsafe combinations are refused when the settings are built
(:func:`load_settings` turns the refusal into a clear message and exit status 2), never
discovered later as a 500 or an open door.
"""

from __future__ import annotations

import sys
from typing import Annotated, Literal, NoReturn, Self, TypeVar

from pydantic import AfterValidator, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from trulayer_common.clickhouse.client import ReadPolicy
from trulayer_common.outbound import OutboundPolicy
from trulayer_common.secret_box import SecretBox

S = TypeVar("S", bound=BaseSettings)

MIN_SHARED_SECRET_CHARS = 32
_PLACEHOLDERS = ("changeme", "replaceme", "placeholder", "yoursecret", "insertsecret")


def _strong_secret(value: SecretStr | None, name: str) -> SecretStr | None:
    if value is None:
        return None
    text = value.get_secret_value()
    if not text.strip():
        raise ValueError(f"{name} is set but empty: unset it, or set a random value (openssl rand -hex 32)")
    letters = "".join(c for c in text.lower() if c.isalnum())
    if len(text) < MIN_SHARED_SECRET_CHARS or any(p in letters for p in _PLACEHOLDERS) or len(set(text)) < 8:
        raise ValueError(
            f"{name} looks like a placeholder or is too weak: use at least {MIN_SHARED_SECRET_CHARS} random "
            "characters (openssl rand -hex 32)"
        )
    return value


def _internal_token(value: SecretStr | None) -> SecretStr | None:
    return _strong_secret(value, "INTERNAL_TOKEN")


def _session_secret(value: SecretStr | None) -> SecretStr | None:
    return _strong_secret(value, "SESSION_HS256_SECRET")


# The shared secret between the gateway and the control-engine (``INTERNAL_TOKEN``).
InternalToken = Annotated[SecretStr | None, AfterValidator(_internal_token)]
# The HS256 secret of session tokens (``SESSION_HS256_SECRET``): never empty, never short.
SessionSecret = Annotated[SecretStr | None, AfterValidator(_session_secret)]


class ServiceSettings(BaseSettings):
    """What every service needs to reach the shared infrastructure."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    service_name: str = "trulayer"
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    clickhouse_url: str = Field(
        default="chdb://./.trulayer/clickhouse",
        description="chdb:///abs/path or chdb://./relative/path for embedded chDB, http(s)://host:8123 for a server",
    )
    clickhouse_database: str = "trulayer"
    # Reads (issue 10): a bounded pool beside the writer's own connection (clickhouse/client.py).
    clickhouse_read_concurrency: int = Field(default=4, ge=1, le=64, description="reads running at once")
    clickhouse_read_queue: int = Field(
        default=64, ge=0, le=10_000, description="reads waiting for a reader; beyond it a read is refused (503)"
    )
    clickhouse_read_timeout_seconds: float = Field(
        default=10.0, gt=0, le=3600, description="max_execution_time of a read"
    )
    clickhouse_read_max_threads: int = Field(
        default=0, ge=0, le=256, description="threads per read (0: engine default)"
    )
    clickhouse_read_duty_cycle: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="share of the readers' time sustained scans may use (a token bucket of engine time, 2 s burst)",
    )
    clickhouse_read_nice: int = Field(
        default=10, ge=0, le=19, description="nice value of the engine threads running a read (0: same as the writer)"
    )
    log_level: str = "INFO"
    log_json: bool | None = Field(default=None, description="JSON logs; default: JSON unless stderr is a TTY")
    kafka_max_message_bytes: int = 16 * 1024 * 1024
    kafka_group_instance_id: str | None = Field(
        default=None,
        description="static consumer-group membership: a restarted instance gets its partitions back at once",
    )
    broker_probe_interval_seconds: float = Field(
        default=1.0, gt=0, description="how often readiness probes the brokers (trulayer_common.broker_health)"
    )
    broker_probe_timeout_seconds: float = Field(default=2.0, gt=0, description="a broker probe slower than this fails")

    # Kafka in a cluster: durability of the topics we create, and how every client connects.
    kafka_replication_factor: int = Field(default=1, ge=1, description="replicas of every topic we create")
    kafka_min_insync_replicas: int = Field(
        default=1, ge=1, description="min.insync.replicas of every topic we create (acks=all waits for this many)"
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = Field(default=None, description="CA bundle that signed the brokers' certificates")
    kafka_ssl_certfile: str | None = Field(default=None, description="client certificate (mutual TLS)")
    kafka_ssl_keyfile: str | None = Field(default=None, description="client key (mutual TLS)")
    kafka_ssl_check_hostname: bool = True

    # Tenant-chosen outbound URLs (webhooks): private destinations an operator allows.
    egress_allowlist: str = Field(
        default="", description="comma-separated CIDRs and host names webhooks may reach besides public addresses"
    )
    # Secrets sealed on the config log (webhook secrets): ``kid:base64key[,...]``, first seals.
    config_secret_keys: SecretStr | None = None
    config_max_lag_seconds: float = Field(
        default=15.0, gt=0, description="not ready when the config log has not been caught up for this long"
    )

    @model_validator(mode="after")
    def _check_shared(self) -> Self:
        if self.kafka_min_insync_replicas > self.kafka_replication_factor:
            raise ValueError(
                "KAFKA_MIN_INSYNC_REPLICAS must not exceed KAFKA_REPLICATION_FACTOR "
                f"({self.kafka_min_insync_replicas} > {self.kafka_replication_factor}): no write could succeed"
            )
        if self.kafka_security_protocol.startswith("SASL"):
            if self.kafka_sasl_mechanism is None or not self.kafka_sasl_username or self.kafka_sasl_password is None:
                raise ValueError(
                    f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs KAFKA_SASL_MECHANISM, "
                    "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
                )
        elif self.kafka_sasl_mechanism is not None:
            raise ValueError("KAFKA_SASL_MECHANISM is set but KAFKA_SECURITY_PROTOCOL is not SASL_PLAINTEXT/SASL_SSL")
        OutboundPolicy.parse(self.egress_allowlist)  # raises naming the bad entry
        if self.config_secret_keys is not None:
            SecretBox.parse(self.config_secret_keys.get_secret_value())
        return self

    def clickhouse_read_policy(self) -> ReadPolicy:
        return ReadPolicy(
            concurrency=self.clickhouse_read_concurrency,
            queue=self.clickhouse_read_queue,
            max_seconds=self.clickhouse_read_timeout_seconds,
            max_threads=self.clickhouse_read_max_threads,
            nice=self.clickhouse_read_nice,
            duty_cycle=self.clickhouse_read_duty_cycle,
        )

    def outbound_policy(self) -> OutboundPolicy:
        return OutboundPolicy.parse(self.egress_allowlist)

    def secret_box(self) -> SecretBox:
        """The config-log secret box; raises ``ValueError`` when ``CONFIG_SECRET_KEYS`` is unset."""
        if self.config_secret_keys is None:
            raise ValueError(
                "CONFIG_SECRET_KEYS is not set: webhook secrets are sealed with it "
                "(generate one with: trulayer secrets generate-key)"
            )
        return SecretBox.parse(self.config_secret_keys.get_secret_value())


def load_settings(cls: type[S]) -> S:
    """Build ``cls`` from the environment; an invalid configuration exits with a clear message
    (status 2) instead of a traceback, before anything starts."""
    try:
        return cls()
    except (ValidationError, ValueError) as exc:
        print(f"configuration refused ({cls.__name__}):", file=sys.stderr)
        errors = exc.errors(include_url=False, include_input=False) if isinstance(exc, ValidationError) else []
        for err in errors:
            field = ".".join(str(p) for p in err["loc"]).upper() or "settings"
            print(f"  {field}: {err['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        if not errors:
            print(f"  {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def refuse(message: str) -> NoReturn:
    """Stop at start with ``message`` (exit status 2): an unsafe configuration, stated clearly."""
    print(f"configuration refused: {message}", file=sys.stderr)
    raise SystemExit(2)
