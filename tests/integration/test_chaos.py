"""The fault-injection suite in a bounded form (``make chaos`` runs it longer and prints the
table for the README): a real ``trulayer-local up`` stack of its own under batch load; the
services process and the broker killed with SIGKILL, Redis stopped, ClickHouse refusing
inserts, a gateway replica restarted. After each, every acknowledged trace is stored, exactly
once as reads see it. Times are printed, not asserted.
"""

from __future__ import annotations

import shutil

from tests.chaos.suite import Timing, cleanup, run_suite, table
from tests.integration.conftest import DATA_DIR


async def test_every_acknowledged_trace_survives_each_fault_exactly_once():
    data_dir = DATA_DIR / "chaos"
    cleanup(data_dir)
    shutil.rmtree(data_dir, ignore_errors=True)
    try:
        outcomes, notes = await run_suite(data_dir, Timing(warm=3.0, after=2.0, refuse=4.0, clients=3))
    finally:
        cleanup(data_dir)
    print("\n" + table(outcomes))
    print({name: round(value, 2) for name, value in notes.items()})
    assert [o.fault for o in outcomes] == [
        "kill -9 services process",
        "kill -9 broker",
        "Redis stopped",
        "ClickHouse refuses inserts",
        "gateway replica restarted",
    ]
    for outcome in outcomes:
        verified = outcome.verified
        assert verified["acknowledged"] > 0, outcome.fault
        assert verified["lost"] == 0, (outcome.fault, verified)
        assert verified["duplicates"] == 0, (outcome.fault, verified)
        assert verified["stored"] == verified["acknowledged"], (outcome.fault, verified)
    # Ctrl-C stopped the stack cleanly, also right after its broker was killed.
    assert notes["ctrl_c_stop_with_dead_broker_exit"] == 0
    assert notes["ctrl_c_stop_with_dead_broker_left_running"] == 0
