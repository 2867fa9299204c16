"""Service settings: environment variables only, validated at start, passed in explicitly.

Every service has one settings class deriving from :class:`ServiceSettings`; nothing reads
``os.environ`` anywhere else.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    config_max_lag_seconds: float = Field(
        default=15.0, gt=0, description="not ready when the config log has not been caught up for this long"
    )
