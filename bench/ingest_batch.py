"""The web's CPU for one ingest batch, column by column against row by row, in one process.

Each 1,000-row batch goes from its JSON body to the rows as stored (server.ingest.columns):
parsed, checked, users numbered and agents resolved against a database (cached after the
first pass, as in a running web process), countries looked up, enriched. Both ways run
over the same bodies, alternated `--repeats` times, with timestamps to the microsecond
(Python's isoformat) and to the millisecond (what our middleware sends); the script
checks both ways give the same rows and prints the median microseconds a row of each,
their phases, and the ratios. No HTTP and no write: bench/ingest.py measures those.

Run: `bench/ingest_batch.py` (200,000 rows, 5 repeats); `--quick` (20,000 rows, 2).
Rows as bench/ingest.py makes them; the country database of `make geoip` if present.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson  # noqa: E402

from bench.ingest import make_rows  # noqa: E402
from bench.services import geoip_db, progress  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.repeats = 20_000, 2

    from server.cli import upgrade_database
    from server.db import init_engine
    from server.ingest import geo
    from server.ingest.columns import Batch
    from server.ingest.enrich import enrich as enrich_batch
    from server.ingest.fields import validate_rows
    from server.lake import agents as useragents

    url = f"sqlite:///{tempfile.mkdtemp(prefix='bench-batch-')}/bench.db"
    upgrade_database(url)
    engine = init_engine(url)
    geo.init_geo(geoip_db() or "")
    useragents.warm()
    now = datetime.now(UTC)
    rows = make_rows(args.rows, random.Random(7), now - timedelta(hours=23), timedelta(hours=23))
    # Timestamps to the microsecond (Python's isoformat) and to the millisecond (what our
    # middleware sends, api_analytics.records): both go column by column.
    milli = [{**r, "created_at": r["created_at"][:23] + "+00:00"} for r in rows]
    stamps = {"µs stamps": rows, "ms stamps": milli}
    bodies = {
        kind: [orjson.dumps(batch[i : i + 1000]) for i in range(0, len(batch), 1000)]
        for kind, batch in stamps.items()
    }

    def by_rows(parsed):
        staged, rejected = validate_rows(parsed, 0, now)
        return Batch.from_staged(staged, 0), rejected

    def by_columns(parsed):
        return Batch.take(parsed, 0, now), []

    ways = {"row by row": by_rows, "column by column": by_columns}
    progress(f"{len(rows) // 1000} batches of 1,000 rows; the first pass numbers users, checks")
    for kind in stamps:
        for body in bodies[kind]:
            stored = [
                enrich_batch(engine, 1, "FastAPI", w(orjson.loads(body))[0]) for w in ways.values()
            ]
            if stored[0] != stored[1]:
                raise SystemExit(f"{kind}: the two ways stored different rows")
            if not by_columns(orjson.loads(body))[0].by_column:
                raise SystemExit(f"{kind}: a clean batch fell back to row by row")

    cases = [(kind, name) for kind in stamps for name in ways]
    times = {case: {"check": [], "enrich": [], "total": []} for case in cases}
    for repeat in range(1, args.repeats + 1):
        for kind, name in cases:
            parsed = [orjson.loads(body) for body in bodies[kind]]  # new objects, as per request
            check = enrich = 0.0
            for batch_rows in parsed:
                started = time.process_time()
                batch, _ = ways[name](batch_rows)
                checked = time.process_time()
                enrich_batch(engine, 1, "FastAPI", batch)
                check += checked - started
                enrich += time.process_time() - checked
            for phase, seconds in (("check", check), ("enrich", enrich)):
                times[kind, name][phase].append(seconds / len(rows) * 1e6)
            times[kind, name]["total"].append((check + enrich) / len(rows) * 1e6)
        progress(f"repeat {repeat}/{args.repeats}")

    print()
    print("== one batch's CPU in the web, 1,000-row batches (µs a row, median) ==")
    print(f"{'':30} {'check':>8} {'enrich':>8} {'total':>8}")
    for kind, name in cases:
        m = {phase: statistics.median(v) for phase, v in times[kind, name].items()}
        label = f"{kind}, {name}"
        print(f"{label:30} {m['check']:>8.2f} {m['enrich']:>8.2f} {m['total']:>8.2f}")
    for kind in stamps:
        pairs = zip(*(times[kind, name]["total"] for name in ways), strict=True)
        ratio = statistics.median(r / c for r, c in pairs)
        print(f"{kind}: row by row / column by column {ratio:.2f}x "
              f"(median of {args.repeats} alternated repeats)")  # fmt: skip
    print(f"country lookup: {'on' if geoip_db() else 'off (run make geoip)'}")


if __name__ == "__main__":
    main()
