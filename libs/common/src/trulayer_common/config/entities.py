"""Configuration entities. Each record on ``trulayer.config`` is the full current state of one
entity, keyed ``<kind>:<id>``, so log compaction keeps exactly the latest state of each."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Plan = Literal["starter", "pro", "enterprise"]


class _Entity(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Tenant(_Entity):
    kind: Literal["tenant"] = "tenant"
    id: str
    name: str
    plan: Plan = "starter"
    created_at: datetime


class Project(_Entity):
    kind: Literal["project"] = "project"
    id: str
    tenant_id: str
    name: str
    archived: bool = False
    retention_days_override: int | None = None
    created_at: datetime


class ApiKey(_Entity):
    """An API key as stored: only the SHA-256 of the secret, never the secret itself.

    Keys are 190+ bits of randomness, so a fast unsalted hash is enough (no dictionary to
    attack) and lets every replica look a key up in O(1).
    """

    kind: Literal["api_key"] = "api_key"
    id: str
    tenant_id: str
    project_id: str
    name: str
    prefix: str
    key_hash: str
    scopes: list[str] = Field(default_factory=lambda: ["ingest", "read"])
    created_at: datetime
    revoked_at: datetime | None = None


Entity = Annotated[Tenant | Project | ApiKey, Field(discriminator="kind")]


class ConfigRecord(BaseModel):
    """The value of one config log record."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    entity: Entity
    actor: str = "system"
    at: datetime

    @property
    def key(self) -> str:
        return f"{self.entity.kind}:{self.entity.id}"


def hash_api_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
