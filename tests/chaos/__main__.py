"""``make chaos``: the full fault-injection suite on a fresh stack; prints the fault table.

Environment: CHAOS_WARM_SECONDS (10), CHAOS_AFTER_SECONDS (10), CHAOS_REFUSE_SECONDS (10),
CHAOS_CLIENTS (4), CHAOS_DATA_DIR (.trulayer/chaos, wiped first).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

from tests.chaos.suite import REPO, Timing, cleanup, run_suite, table


def main() -> int:
    data_dir = Path(os.environ.get("CHAOS_DATA_DIR", REPO / ".trulayer" / "chaos")).resolve()
    cleanup(data_dir)
    shutil.rmtree(data_dir, ignore_errors=True)
    timing = Timing(
        warm=float(os.environ.get("CHAOS_WARM_SECONDS", "10")),
        after=float(os.environ.get("CHAOS_AFTER_SECONDS", "10")),
        refuse=float(os.environ.get("CHAOS_REFUSE_SECONDS", "10")),
        clients=int(os.environ.get("CHAOS_CLIENTS", "4")),
    )
    outcomes, notes = asyncio.run(run_suite(data_dir, timing))
    print("\n" + table(outcomes) + "\n")
    for name, value in notes.items():
        print(f"{name}: {value:.2f}" if isinstance(value, float) else f"{name}: {value}")
    bad = [o.fault for o in outcomes if o.verified["lost"] or o.verified["duplicates"]]
    if bad:
        print(f"FAILED: lost or duplicated traces after: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
