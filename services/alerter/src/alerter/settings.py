"""Alerter settings (environment only)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from trulayer_common.settings import ServiceSettings


class AlerterSettings(ServiceSettings):
    service_name: str = "alerter"
    alerter_host: str = "127.0.0.1"
    alerter_port: int = 8083
    alerter_app_id: str = Field(
        default="trulayer-alerter", description="faust app id: consumer group and changelog topic prefix"
    )
    alerter_data_dir: str = Field(default="./.trulayer/alerter", description="faust's local state directory")
    alerter_start_from: Literal["earliest", "latest"] = Field(
        default="latest", description="where a brand-new consumer group starts (committed offsets win after)"
    )
    alerter_partitions: int = Field(default=8, ge=1, description="partitions of the observations topic")
    bucket_secs: int = Field(default=5, ge=1, description="granularity of the sliding windows")
    max_window_secs: int = Field(default=3600, ge=60, description="longest rule window kept in state")
    anomaly_bucket_secs: int = Field(default=60, ge=5, description="one anomaly sample per project per bucket")
    anomaly_warmup_buckets: int = Field(default=10, ge=2, description="samples before a baseline is trusted")
    anomaly_alpha: float = Field(default=0.1, gt=0, lt=1, description="EWMA weight of the newest sample")
    anomaly_z_threshold: float = Field(default=3.0, gt=0)
    anomaly_min_traces: int = Field(default=10, ge=1, description="fewer traces: no latency/error-rate sample")
    alerter_signals_interval_seconds: float = Field(
        default=1.0, gt=0, description="live window summaries are published at most this often per scope"
    )
    escalation_cooldown_seconds: float = Field(
        default=300.0, ge=0, description="policy.escalated fires at most once per policy × project in this time"
    )
    escalation_max_age_seconds: float = Field(
        default=300.0, gt=0, description="escalations decided longer ago than this are not delivered"
    )
    webhook_timeout_seconds: float = Field(default=5.0, gt=0)
    webhook_max_attempts: int = Field(default=5, ge=1, le=20)
    webhook_backoff_base_seconds: float = Field(default=0.5, ge=0)
    webhook_backoff_max_seconds: float = Field(default=30.0, ge=0)
    webhook_concurrency: int = Field(default=64, ge=1, description="deliveries in flight, all tenants")
    webhook_tenant_concurrency: int = Field(default=4, ge=1, description="deliveries in flight per tenant")
    webhook_max_pending: int = Field(
        default=10_000, ge=1, description="waiting deliveries, all tenants, before dropping"
    )
    webhook_tenant_max_pending: int = Field(
        default=500, ge=1, description="waiting deliveries of one tenant before its new ones are dropped"
    )
    webhook_max_reply_bytes: int = Field(default=4096, ge=0, description="bytes of a receiver's reply read at most")
