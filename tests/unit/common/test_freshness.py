"""How current a config-log follower is (issue 15, finding 12)."""

from __future__ import annotations

from trulayer_common.config.freshness import Freshness


def test_current_as_of_the_last_answer_whose_records_are_applied() -> None:
    f = Freshness(started_at=100.0)
    assert f.staleness(now=103.0) == 3.0  # nothing heard yet: counts from the start
    f.observe("p0", position=10, highwater=10, answered_at=105.0)
    assert f.staleness(now=106.0) == 1.0
    # A new record arrived (watermark 11) but is not applied yet: still current as of 105.
    f.observe("p0", position=10, highwater=11, answered_at=107.0)
    assert f.current_as_of() == 105.0
    # Applied: current as of the answer that announced it, even if no newer answer came.
    f.observe("p0", position=11, highwater=None, answered_at=None)
    assert f.current_as_of() == 107.0


def test_no_answers_from_the_broker_make_it_stale() -> None:
    f = Freshness(started_at=0.0)
    f.observe("p0", position=5, highwater=5, answered_at=50.0)
    for _ in range(100):  # the reader keeps looping, the broker never answers again
        f.observe("p0", position=5, highwater=5, answered_at=50.0)
    assert f.staleness(now=80.0) == 30.0


def test_a_steady_stream_of_changes_keeps_it_fresh() -> None:
    f = Freshness(started_at=0.0)
    for position, t in enumerate(range(1, 20)):
        # Every answer announces a record that the next round applies.
        f.observe("p0", position=position, highwater=position + 1, answered_at=float(t))
    assert f.staleness(now=20.0) <= 2.0
