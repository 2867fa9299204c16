"""Run as ``python -m tests.chaos.verify <chdb dir> <acked.json>`` once the stack has stopped (chDB
allows one process per data directory): for each model in ``acked.json`` (model → acknowledged
ids), what reads see (``FINAL``, as every read endpoint queries) against what was acknowledged.
Prints one JSON object: model → {acknowledged, stored, lost, duplicates, raw_rows}.

* stored: acknowledged ids found; lost: acknowledged ids not found;
* duplicates: rows beyond one per id in what reads see (``count() - uniqExact(id)`` with FINAL);
* raw_rows: rows without FINAL (redelivered records written twice, merged away on read).
"""

from __future__ import annotations

import sys
from pathlib import Path

import clickhouse_connect
import orjson


def main(chdb: str, acked_file: str) -> None:
    acked: dict[str, list[str]] = orjson.loads(Path(acked_file).read_bytes())
    client = clickhouse_connect.get_client(dsn=f"chdb://{chdb}")
    report = {}
    for model, ids in acked.items():
        params = {"m": model}
        seen = {
            row[0]
            for row in client.query(
                "SELECT id FROM trulayer.traces FINAL WHERE model = {m:String}", parameters=params
            ).result_rows
        }
        rows, distinct = client.query(
            "SELECT count(), uniqExact(id) FROM trulayer.traces FINAL WHERE model = {m:String}", parameters=params
        ).result_rows[0]
        raw = client.command("SELECT count() FROM trulayer.traces WHERE model = {m:String}", parameters=params)
        wanted = set(ids)
        report[model] = {
            "acknowledged": len(wanted),
            "stored": len(wanted & seen),
            "lost": len(wanted - seen),
            "unacknowledged_stored": len(seen - wanted),
            "duplicates": int(rows) - int(distinct),
            "raw_rows": int(raw),
        }
    client.close()
    sys.stdout.write(orjson.dumps(report).decode() + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
