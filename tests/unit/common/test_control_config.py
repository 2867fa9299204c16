"""The materialised control configuration and the control topics' records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from trulayer_common.config import ConfigRecord, ConfigState, Project
from trulayer_common.config.control_entities import KillSwitch, ModelRoute, Policy, PolicyRuleSpec, SafeDefault
from trulayer_common.config.entities import Tenant
from trulayer_common.topics import config as config_records
from trulayer_common.topics import control_decisions, signals

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def record(entity: object, at: datetime) -> ConfigRecord:
    return ConfigRecord(entity=entity, at=at)  # type: ignore[arg-type]


def policy(pid: str = "p1", tenant: str = "t", **fields: object) -> Policy:
    return Policy(
        id=pid, tenant_id=tenant, name=pid, trigger_type="failure_rate", action_type="block", created_at=T0, **fields
    )


def route(rid: str = "r1", **fields: object) -> ModelRoute:
    return ModelRoute(
        id=rid,
        tenant_id="t",
        name=rid,
        condition={"type": "error_rate", "threshold": 0.5, "window_minutes": 10},
        action={"type": "block"},
        created_at=T0,
        **fields,
    )


def test_tenant_view_revision_version_and_listeners() -> None:
    state = ConfigState()
    heard: list[str] = []
    state.control.listen(heard.append)
    assert state.control.of("t").revision == 0 and not state.control.of("t").tracks_models
    state.apply(record(policy(rule=PolicyRuleSpec(threshold=0.5, window_minutes=3)), T0 + timedelta(seconds=2)))
    state.apply(record(route(), T0 + timedelta(seconds=5)))
    view = state.control.of("t")
    assert view.revision == 2 and view.version == int((T0 + timedelta(seconds=5)).timestamp() * 1000)
    assert view.tracks_models and view.window_seconds == frozenset({180, 600})
    # Deleting the newest entity never moves the version back; the route leaves the view.
    state.apply(record(route(deleted_at=T0), T0 + timedelta(seconds=6)))
    assert "r1" not in state.control.of("t").model_routes
    assert state.control.of("t").version == int((T0 + timedelta(seconds=6)).timestamp() * 1000)
    # Archived policies stay readable and stop deciding.
    state.apply(record(policy(status="archived"), T0 + timedelta(seconds=7)))
    assert state.control.of("t").policies["p1"].status == "archived" and not state.control.of("t").tracks_models
    assert heard == ["t"] * 4
    assert state.control.owner("policy", "p1") == "t" and state.control.owner("policy", "nope") is None


def test_killswitch_safe_default_tombstones_and_projects() -> None:
    state = ConfigState()
    assert state.control.of("t").effective_safe_default().enforcement == "deny"
    state.apply(record(SafeDefault(id="t", tenant_id="t", enforcement="allow", updated_at=T0), T0))
    state.apply(record(KillSwitch(id="t", tenant_id="t", active=True, updated_at=T0), T0))
    assert state.control.of("t").effective_safe_default().enforcement == "allow"
    assert state.control.of("t").killswitches["t"].active
    state.delete("killswitch:t")
    state.delete("safe_default:t")
    assert state.control.of("t").killswitches == {} and state.control.of("t").safe_default is None
    before = state.control.of("t").revision
    state.apply(record(Tenant(id="t", name="t", created_at=T0), T0))
    state.apply(record(Project(id="p", tenant_id="t", name="default", created_at=T0), T0))
    assert state.control.of("t").revision == before + 1  # bundles list projects: a project change is one


def test_control_entities_round_trip_the_config_topic() -> None:
    for entity in (policy(), route(), KillSwitch(id="t/p", tenant_id="t", project_id="p", active=True, updated_at=T0)):
        decoded = config_records.decode(config_records.encode(record(entity, T0)))
        assert decoded.entity == entity


def test_unknown_action_types_still_decode() -> None:
    """A newer control-engine's policy must not be dropped (the decision fails closed on it)."""
    raw = config_records.encode(record(policy(), T0)).replace(b'"block"', b'"quarantine"')
    assert config_records.decode(raw).entity.action_type == "quarantine"  # type: ignore[union-attr]


def test_signal_records_of_version_1_without_windows_still_decode() -> None:
    old = {
        "schema_version": 1,
        "tenant_id": "t",
        "project_id": "p",
        "received_at": "2026-01-01T00:00:00Z",
        "payload": {
            "tenant_id": "t",
            "project_id": "p",
            "model": "",
            "window_secs": 300,
            "as_of": "2026-01-01T00:00:00Z",
            "count": 4,
            "error_rate": 0.25,
        },
    }
    record_ = signals.decode(orjson.dumps(old)).payload
    (only,) = record_.summaries()
    assert (only.window_secs, only.count, only.error_rate) == (300, 4, 0.25) and record_.anomalies == {}


def test_decision_records_mark_escalations_in_a_header() -> None:
    base = {"id": "d1", "decided_at": T0, "source": "server", "project_id": "p", "requested_model": "m"}
    plain = [control_decisions.ControlDecision(**base, decision="allow", action="retry")]  # type: ignore[typeddict-item]
    loud = [control_decisions.ControlDecision(**base, decision="allow", action="escalate")]  # type: ignore[typeddict-item]
    quiet = [control_decisions.ControlDecision(**base, decision="allow", action="escalate", dry_run=True)]  # type: ignore[typeddict-item]
    assert control_decisions.headers(plain) == [] and control_decisions.headers(quiet) == []
    assert control_decisions.escalates(control_decisions.headers(loud))
    value = control_decisions.encode(loud, tenant_id="t", project_id="p", request_id="r")
    assert control_decisions.decode(value).payload["decisions"][0]["action"] == "escalate"
