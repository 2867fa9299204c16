"""The alerter's state stays finite and decodes tolerantly (issue 15, finding 4): a bad stored
entry is dropped and counted, never a crash on every record; absurd inputs never overflow."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import REGISTRY

from alerter.anomalies import Baseline
from alerter.evaluator import Evaluator
from alerter.observations import checked_observation, observations_from_points
from alerter.settings import AlerterSettings
from alerter.sketch import LogSketch
from alerter.windows import BucketAgg
from trulayer_common.config import ConfigRecord, ConfigState
from trulayer_common.config.entities import AlertRule
from trulayer_common.topics import InvalidRecordError

NOW = 1_790_000_000.0


def dropped(table: str) -> float:
    return REGISTRY.get_sample_value("trulayer_alerter_state_dropped_total", {"table": table}) or 0.0


def evaluator(*rules: AlertRule, **stores: dict[str, Any]) -> Evaluator:
    state = ConfigState()
    for rule in rules:
        state.apply(ConfigRecord(entity=rule, at=datetime.now(UTC)))
    return Evaluator(
        AlerterSettings(),
        state,
        stores.get("buckets", {}),
        stores.get("meta", {}),
        stores.get("fired", {}),
        stores.get("baselines", {}),
    )


def volume_rule() -> AlertRule:
    return AlertRule(
        id="r",
        tenant_id="t",
        metric="volume",
        operator="gte",
        threshold=1,
        cooldown_minutes=1,
        created_at=datetime.now(UTC),
    )


def message(ts: float, latency: float | None = 10, cost: float | None = 0.01) -> dict[str, Any]:
    return {"tenant_id": "t", "project_id": "p", "points": [[ts, "m", latency, 0, cost]], "scores": []}


def test_corrupt_entries_of_every_table_are_dropped_counted_and_alerting_goes_on() -> None:
    """The state an overflow left behind once: nulls where numbers were. Before, the first
    record after a restart crashed ``Baseline.from_json`` (``float(None)``), then every one."""
    bucket = int(NOW // 5 * 5)
    stores = {
        "buckets": {f"t|p||{bucket}": {"c": 2, "e": 0, "$": None, "l": {"z": 0, "b": {}}, "s": {}}},
        "meta": {"t|p": {"wm": None, "lo": "x", "models": [], "an": int(NOW // 60 * 60) - 120}},
        "fired": {"r|p": "not-a-time"},
        "baselines": {"t|p|volume": {"m": None, "v": None, "n": 12}, "t|p|error_rate": "garbage"},
    }
    before = {table: dropped(table) for table in stores}
    ev = evaluator(volume_rule(), **stores)
    ten = message(NOW)
    ten["points"] = ten["points"] * 10  # enough traces for an error-rate sample
    outcome = ev.process(ten)
    assert [a["rule_id"] for a in outcome.alerts] == ["r"]  # alerting goes on
    ev.process(message(NOW + 61))  # closes an anomaly bucket: the baselines are read
    assert {table: dropped(table) - before[table] for table in stores} == {
        "buckets": 1,
        "meta": 1,
        "fired": 1,
        "baselines": 2,
    }
    assert Baseline.from_json(ev.baselines["t|p|volume"]).n >= 1  # started afresh, decodes again


def test_window_state_stays_finite_whatever_the_input() -> None:
    agg = BucketAgg()
    for _ in range(2):
        agg.add_point(1e308, 0, 1e308)
        agg.add_point(math.inf, 1, math.nan)
        agg.add_score("m", 1e308)
        agg.add_score("m", math.inf)
    assert math.isfinite(agg.cost) and math.isfinite(agg.scores["m"][0])
    back = BucketAgg.from_json(agg.to_json())  # what is written always decodes
    assert back.count == 4 and back.latency.quantile(0.99) is not None
    assert math.isfinite(back.latency.quantile(0.99) or math.nan)
    baseline = Baseline()
    for x in (1e308, -1e308, 1e308):
        baseline.update(x, 0.1)
    assert math.isfinite(baseline.mean) and math.isfinite(baseline.var)
    assert Baseline.from_json(baseline.to_json()).n == 3
    sketch = LogSketch()
    sketch.add(1e308)
    assert math.isfinite(LogSketch.from_json(sketch.to_json()).quantile(1.0) or math.nan)


def test_absurd_points_are_dropped_at_the_alerters_input() -> None:
    header = b'{"tenant_id":"t","groups":{"p":[[1e308,"m",1,0,1],[1790000000.5,"m",1e308,1,1e308],[-5,"m",1,0,1]]}}'
    points = observations_from_points(header)["t|p"]["points"]
    assert points == [[1790000000.5, "m", 1e308, 1, 1e308]]  # finite: the windows bound them
    with pytest.raises(InvalidRecordError):  # not a point at all: the record is skipped
        observations_from_points(b'{"tenant_id":"t","groups":{"p":[["x","m",1,0,1]]}}')
    checked = checked_observation(
        {"tenant_id": "t", "project_id": "p", "points": [[None, "m", 1, 0, 1], [1790000000, 3, "x", 1, None]]}
    )
    assert checked["points"] == [[1790000000.0, "", None, 1, None]]


async def test_an_agent_that_crashes_turns_the_alerters_liveness_red() -> None:
    from alerter.app import agent_health_key, create_app
    from trulayer_common.health import dead_checks
    from trulayer_common.secret_box import generate_key_spec

    app = create_app(AlerterSettings(config_secret_keys=generate_key_spec()))  # not started
    assert dead_checks(app) == {}
    health = app[agent_health_key]

    async def evaluate(stream: Any) -> None:
        raise TypeError("float() argument must be a string or a real number, not 'NoneType'")

    with pytest.raises(TypeError):
        await health.watched(evaluate)(None)
    assert dead_checks(app) == {
        "agents": "agent evaluate crashed: TypeError: "
        + str(TypeError("float() argument must be a string or a real number, not 'NoneType'"))
    }
