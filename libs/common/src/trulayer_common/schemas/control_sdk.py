"""Wire shapes of the SDK surface the gateway serves from memory (API.md "Control engine"):
the policy bundle, decide/execute, and the decisions SDKs report.

``POST /v1/control/decide`` is the hot one: its request is validated into a model of a few
fields (~µs). Decision reports are data like traces: ≤100 per request ("Max 100 events per
batch"), each stored as a row of ``control_decisions`` (``dataSource: configMetrics``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from trulayer_common.schemas.policies import ModelRouteOut, PolicyOut

DecisionKind = Literal["allow", "block", "route"]
MAX_DECISIONS = 100
MAX_METADATA_KEYS = 32
Id = Annotated[str, Field(min_length=1, max_length=256)]
# Flat values only (like tags): what a configMetrics group-by can use, and nothing a JSON
# encoder could refuse later (integers beyond 64 bits, NaN).
MetadataValue = (
    Annotated[str, Field(max_length=1024)]
    | bool
    | Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
    | Annotated[float, Field(allow_inf_nan=False)]
    | None
)
Metadata = Annotated[dict[Annotated[str, Field(max_length=128)], MetadataValue], Field(max_length=MAX_METADATA_KEYS)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BundleKillSwitchProject(_Response):
    project_id: str
    reason: str | None
    updated_at: str


class BundleKillSwitch(_Response):
    active: bool
    reason: str | None
    updated_at: str | None
    projects: list[BundleKillSwitchProject] = Field(description="projects switched off (active ones only)")


class BundleSafeDefault(_Response):
    enforcement: str
    routing: str


class PolicyBundleOut(_Response):
    version: int = Field(description="the newest change's time (ms): the same on every replica, never decreasing")
    killswitch: BundleKillSwitch
    policies: list[PolicyOut] = Field(description="active policies, by priority then id")
    model_routes: list[ModelRouteOut] = Field(description="enabled routes, by priority then id")
    safe_default: BundleSafeDefault
    projects: dict[str, str] = Field(description="project name → id, to resolve names locally")
    default_project_id: str | None = Field(description="the calling API key's own project")


class DecideRequest(_Request):
    model: Id
    project_id: Id | None = Field(default=None, description="project id or name; default: the key's own")
    metadata: Metadata | None = None
    request_id: Id | None = Field(default=None, description="the request key rollouts hash (default: a new id)")
    retry_depth: Annotated[int, Field(ge=0, le=100)] = Field(default=0, description="retries of this call so far")
    cascade_depth: Annotated[int, Field(ge=0, le=100)] = Field(default=0, description="fallbacks taken so far")


class DecisionOut(_Response):
    id: str = Field(description="the decision's id in the decision log")
    decision: str
    target_model: str | None
    rule_id: str | None
    reason: str
    dry_run: bool
    action: str | None
    config_type: str | None
    would_decision: str | None
    would_target_model: str | None


class DecisionReport(_Request):
    """One decision an SDK took locally (``trulayer_sdk.policy.PolicyClient`` sends these)."""

    id: Id | None = Field(default=None, description="idempotency: the same id is stored once")
    decided_at: datetime | None = Field(default=None, description="default: receipt; within 7 days before it")
    project_id: Id | None = None
    model: Id
    target_model: Id | None = None
    decision: DecisionKind
    rule_id: Id | None = None
    reason: Annotated[str, Field(max_length=200)] = ""
    dry_run: bool = False
    action: Annotated[str, Field(max_length=64)] | None = None
    config_type: Annotated[str, Field(max_length=64)] | None = None
    request_id: Id | None = None
    retry_depth: Annotated[int, Field(ge=0, le=100)] = 0
    cascade_depth: Annotated[int, Field(ge=0, le=100)] = 0
    status: Annotated[str, Field(max_length=32)] | None = Field(
        default=None, description="the call's outcome when known (success|fail); default from the decision"
    )
    metadata: Metadata | None = None


class DecisionReportBatch(_Request):
    decisions: list[DecisionReport] = Field(min_length=1, max_length=MAX_DECISIONS)


class DecisionsAccepted(_Response):
    accepted: int
