"""Bundles built from the materialised config, and the live signals view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.live_signals import LiveSignals
from gateway.policy_bundles import PolicyBundles
from trulayer_common.config import ConfigRecord, ConfigState, Project
from trulayer_common.config.control_entities import KillSwitch, ModelRoute, Policy
from trulayer_common.settings import ServiceSettings
from trulayer_common.topics import signals

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def apply(state: ConfigState, entity: object, seconds: int = 0) -> None:
    state.apply(ConfigRecord(entity=entity, at=T0 + timedelta(seconds=seconds)))  # type: ignore[arg-type]


def test_bundle_holds_what_decides_and_is_cached_per_revision() -> None:
    state = ConfigState()
    apply(state, Project(id="p1", tenant_id="t", name="default", created_at=T0))
    bundles = PolicyBundles(state)
    empty = bundles.view("t", "p1")
    assert empty.bundle.policies == () and empty.bundle.project_id("default") == "p1"
    assert bundles.view("t", "p1") is empty  # nothing changed: the same view
    for pid, status, priority in (("a", "active", 5), ("b", "paused", 1), ("c", "active", 1)):
        apply(
            state,
            Policy(
                id=pid,
                tenant_id="t",
                name=pid,
                trigger_type="anomaly",
                action_type="block",
                status=status,
                priority=priority,
                created_at=T0,
            ),
            1,
        )
    apply(
        state,
        ModelRoute(
            id="r",
            tenant_id="t",
            name="r",
            condition={"type": "always"},
            action={"type": "block"},
            enabled=False,
            created_at=T0,
        ),
        2,
    )
    apply(state, KillSwitch(id="t/p1", tenant_id="t", project_id="p1", active=True, updated_at=T0), 3)
    view = bundles.view("t", "p1")
    assert view.etag != empty.etag and view.version > empty.version
    assert [p.id for p in view.bundle.policies] == ["c", "a"] and view.bundle.model_routes == ()
    assert view.bundle.killswitch.blocks("p1") and not view.bundle.killswitch.active
    other = PolicyBundles(state).view("t", "p1")  # another replica with the same log: same ETag
    assert (other.etag, other.body) == (view.etag, view.body)
    assert PolicyBundles(state).view("someone-else", None).bundle.policies == ()


def signal(model: str, as_of: datetime, count: int) -> signals.WindowSignal:
    return signals.WindowSignal(
        tenant_id="t",
        project_id="p",
        model=model,
        window_secs=300,
        as_of=as_of,
        count=count,
        error_rate=0.5,
        anomalies={"latency_spike": as_of},
    )


def test_live_signals_keep_the_newest_per_key_and_forget_tombstones() -> None:
    live = LiveSignals(ServiceSettings())
    heard: list[str] = []
    live.listen(heard.append)
    new, old = signal("m", T0 + timedelta(seconds=10), 7), signal("m", T0, 3)
    live.apply(signals.key(new), signals.encode(new))
    live.apply(signals.key(old), signals.encode(old))  # older: ignored
    live.apply(b"t|p|m", b"not json")  # skipped, counted
    now = (T0 + timedelta(seconds=20)).timestamp()
    stats = live.of("t").window("p", "m", 300, now)
    assert stats is not None and stats.count == 7
    assert live.of("t").anomalies("p") == {"latency_spike": new.as_of.timestamp()}
    live.apply(b"t|p|m", None)
    assert live.of("t").window("p", "m", 300, now) is None and heard == ["t", "t"]
