"""The SDK's wire readers: SSE frames, bundles (lenient on additions, strict on shape), signals."""

from __future__ import annotations

import pytest

from trulayer_sdk.policy import BundleError, PolicyBundle, Signals, WindowStats
from trulayer_sdk.policy.sse import SseParser, comment, frame


def feed_all(parser: SseParser, raw: bytes) -> list:
    return [e for line in raw.decode().split("\n") if (e := parser.feed(line)) is not None]


def test_sse_frames_round_trip_with_comments_and_multiline_data() -> None:
    parser = SseParser()
    raw = frame("bundle", '{"a":\n1}', '"etag"') + comment("heartbeat") + frame("signals", "{}")
    events = feed_all(parser, raw)
    # As in the SSE spec, the last event id carries over to later events that set none.
    assert [(e.event, e.data, e.id) for e in events] == [
        ("bundle", '{"a":\n1}', '"etag"'),
        ("signals", "{}", '"etag"'),
    ]
    assert parser.comments == 1


def test_sse_drops_an_oversized_event() -> None:
    parser = SseParser(max_data_chars=10)
    assert feed_all(parser, frame("bundle", "x" * 50) + frame("ok", "y"))[0].event == "ok"


def test_bundle_parsing_ignores_additions_and_refuses_wrong_shapes() -> None:
    bundle = PolicyBundle.from_json(
        {
            "version": 3,
            "future_field": {"x": 1},
            "policies": [
                {"id": "a", "trigger_type": "anomaly", "action_type": "block", "rule": {}, "status": "active"},
                {"id": "b", "trigger_type": "anomaly", "action_type": "block", "rule": {}, "status": "draft"},
            ],
            "model_routes": [
                {"id": "r", "condition": {"type": "always"}, "action": {"type": "block"}, "enabled": False}
            ],
            "safe_default": {"enforcement": "sometimes"},
        }
    )
    assert [p.id for p in bundle.policies] == ["a"] and bundle.model_routes == ()
    assert bundle.safe_default.enforcement == "deny"  # an unknown value: the conservative one
    for bad in ([], {"policies": {}}, {"policies": [{"id": 1}]}, {"killswitch": {"projects": ["p"]}}):
        with pytest.raises(BundleError):
            PolicyBundle.from_json(bad)  # type: ignore[arg-type]


def test_signals_json_round_trip_and_staleness() -> None:
    stats = WindowStats("p", "m", 60, 1000.0, 5, 0.2, 10.0, 20.0, 30.0, 0.01, {"relevance": 0.8})
    signals = Signals([stats], {"p": {"latency_spike": 990.0}})
    again = Signals.from_json(signals.to_json())
    assert again.window("p", "m", 60, 1030.0) == stats
    assert again.window("p", "m", 60, 1061.0) is None  # ended more than its length ago
    assert again.anomalies("p") == {"latency_spike": 990.0}
    assert len(Signals.from_json({"windows": [{"bogus": 1}, stats.to_json()]})) == 1
