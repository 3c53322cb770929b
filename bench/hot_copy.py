"""Embedded mode (SQLite): what a reader or the export pays to hand hot rows to the engine.

Until 2026-12-03 the engine attached the SQLite file through its own SQLite extension.
That is a second copy of SQLite in the process, and the two copies undid each other's
locks: under concurrent writes the process died of a bus error
(tests/server/test_lake.py::test_embedded_reads_and_exports_beside_writes_in_one_process).
Now the application's SQLite writes them as JSON for the engine's JSON reader
(server.lake.source.copy_hot_rows).

This stores `--rows` rows in a fresh SQLite database, then copies them into the engine
both ways, alternated `--repeats` times, with no writer running (the attach is only safe
so), and prints the median seconds of each and their ratio. A reader copies the key's
hot rows past the export boundary (at most LAKE_EXPORT_SECONDS of traffic, 10 s by
default); an export step copies up to server.lake.export.STEP_ROWS (100,000).

Run: `bench/hot_copy.py` (100,000 rows, 5 repeats); `--quick` (10,000 rows, 2 repeats).
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.services import progress  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.repeats = 10_000, 2

    from server.cli import upgrade_database
    from server.config import Config, use_config
    from server.db import init_engine
    from server.keys.api_keys import create_key
    from server.lake import engine, layout, source
    from server.lake.layout import stored_row
    from server.lake.write import store_rows

    data_dir = tempfile.mkdtemp(prefix="bench-hot-copy-")
    atexit.register(shutil.rmtree, data_dir, True)
    path = Path(data_dir) / "hot.db"
    url = f"sqlite:///{path}"
    upgrade_database(url)
    settings = use_config(Config.from_env({}, DATABASE_URL=url, DATA_DIR=data_dir))
    db = init_engine(url)
    with db.begin() as conn:
        key_id, _ = create_key(conn)
    progress(f"storing {args.rows:,} rows in {path}")
    now = datetime.now(UTC)
    rows = [
        stored_row(
            key_id=key_id,
            created_at=now - timedelta(milliseconds=i),
            hostname="api.example.com",
            path=f"/v1/items/{i}",
            method="GET",
            status=200,
            response_time=12,
            ip_address=f"10.0.{i % 250}.{i % 199}",
            location="GB",
            user_id=f"user-{i % 5000}",
            framework="FastAPI",
            user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0",
            browser="Firefox",
            os="Linux",
            device="pc",
            bot=False,
            ux=i % 5000,
        )
        for i in range(args.rows)
    ]
    with db.begin() as conn:
        store_rows(conn, rows)

    def through_sqlite3(n: int) -> float:
        with engine.cursor(settings) as cur:
            started = time.perf_counter()
            copied = source.copy_hot_rows(cur, f"safe_{n}", "id > 0", db)
            took = time.perf_counter() - started
            cur.execute(f"DROP TABLE safe_{n}")
        assert copied == args.rows, copied
        return took

    def through_attach(n: int) -> float:
        import duckdb

        other = duckdb.connect(config={"autoload_known_extensions": False})
        try:
            other.execute(f"LOAD '{engine.extension_path('sqlite_scanner')}'")
            other.execute(f"ATTACH '{path}' AS hot (TYPE sqlite, READ_ONLY)")
            started = time.perf_counter()
            other.execute(
                f"CREATE TEMP TABLE old_{n} AS SELECT {layout.hot_select_list()} "
                "FROM hot.requests WHERE id > 0"
            )
            took = time.perf_counter() - started
            copied = other.execute(f"SELECT count(*) FROM old_{n}").fetchone()[0]
        finally:
            other.close()
        assert copied == args.rows, copied
        return took

    try:
        engine.extension_path("sqlite_scanner")
        baseline = True
    except engine.EngineError as exc:
        progress(f"no baseline: {exc}")
        baseline = False
    now_s, before_s = [], []
    for n in range(args.repeats):
        now_s.append(through_sqlite3(n))
        if baseline:
            before_s.append(through_attach(n))
        progress(f"repeat {n + 1}/{args.repeats}: sqlite3 {now_s[-1]:.3f} s"
                 + (f", attach {before_s[-1]:.3f} s" if baseline else ""))  # fmt: skip
    new = statistics.median(now_s)
    print(f"rows copied                 {args.rows:>10,}")
    print(f"through sqlite3 (now)       {new:>10.3f} s   {new / args.rows * 1e6:.1f} µs a row")
    if baseline:
        old = statistics.median(before_s)
        print(f"engine's SQLite attach      {old:>10.3f} s   {old / args.rows * 1e6:.1f} µs a row")
        print(f"ratio now / attach          {new / old:>10.2f}   (median of {args.repeats})")
    engine.close()


if __name__ == "__main__":
    main()
