"""A merge of the current month's files: re-sorted, or one file after another.

Compaction merges a month's small files into one. Until 2026-12-03 it sorted the rows of
the current month's files again by time, with every core of the engine; each file is in
time order already (the export writes it so), and now one thread copies their rows one
file after another (server.lake.export.rewrite, server.lake.engine.streaming_cursor).

This writes `--files` files of `--file-rows` realistic rows each (bench.lake_load:
consecutive spans of time, each file sorted, as the export leaves them), then merges them
both ways in this process, alternated `--repeats` times, and prints the CPU seconds of
each (every thread of the engine counted, with the engine's memory limit) and their
ratio, and the process's peak RSS.

Run: `bench/compaction.py` (8 files of 500,000 rows: one merge of a full size tier at
30,000 rows/s is 8 x 100,000); `--quick` (8 x 20,000, one repeat).
"""

from __future__ import annotations

import argparse
import atexit
import resource
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.lake_load import _lookups, _month_rows_sql, _users  # noqa: E402
from bench.services import fresh_database, progress  # noqa: E402


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread: the engine's too
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--file-rows", type=int, default=500_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.file_rows, args.repeats = 20_000, 1

    from server.config import Config, use_config
    from server.db import init_engine
    from server.keys.api_keys import create_key
    from server.lake import engine, layout
    from server.lake.layout import PARQUET_OPTIONS
    from server.lake.source import sql_str

    data_dir = tempfile.mkdtemp(prefix="bench-compaction-")
    atexit.register(shutil.rmtree, data_dir, True)  # the store: gigabytes at full size
    rows = args.files * args.file_rows
    with fresh_database() as url:
        settings = use_config(Config.from_env({}, DATABASE_URL=url, DATA_DIR=data_dir))
        db = init_engine(url)
        with db.begin() as conn:
            key_id, _ = create_key(conn)
        now = datetime.now(UTC)
        span_us = 60_000_000 * 10  # each file: ten minutes of traffic, one after another
        start_us = int(now.timestamp() * 1e6) - args.files * span_us
        files = []
        with engine.cursor(settings) as cur:
            _users(cur, db, key_id)
            _lookups(cur)
            for i in range(args.files):
                path = Path(data_dir) / f"part-{i}.parquet"
                sql = _month_rows_sql(key_id, start_us + i * span_us, span_us, args.file_rows, i)
                cur.execute(
                    f"COPY ({sql} ORDER BY {layout.TIME_ORDER}) TO {sql_str(str(path))} "
                    f"({PARQUET_OPTIONS})"
                )
                files.append(sql_str(str(path)))
                progress(f"file {i + 1}/{args.files}: {args.file_rows:,} rows")
            source = f"SELECT {layout.lake_select_list()} FROM read_parquet([{', '.join(files)}])"
            out = sql_str(str(Path(data_dir) / "merged.parquet"))
        # Before: the process's engine (every core), the rows sorted again. Now: server.lake.export
        # rewrite's way, one thread (engine.streaming_cursor), file after file.
        ways = {
            "re-sorted by time (before)": (engine.cursor, f"{source} ORDER BY {layout.TIME_ORDER}"),
            "one file after another (now)": (engine.streaming_cursor, source),
        }
        taken: dict[str, list[float]] = {way: [] for way in ways}
        walls: dict[str, list[float]] = {way: [] for way in ways}
        for repeat in range(args.repeats):
            for way, (cursor, query) in ways.items():
                c0, t0 = cpu(), time.perf_counter()
                with cursor(settings) as cur:
                    cur.execute(f"COPY ({query}) TO {out} ({PARQUET_OPTIONS})")
                taken[way].append(cpu() - c0)
                walls[way].append(time.perf_counter() - t0)
                progress(f"repeat {repeat + 1}/{args.repeats}, {way}: CPU "
                         f"{taken[way][-1]:.2f} s, peak RSS so far {peak_mb():.0f} MB")  # fmt: skip

    print()
    threads = settings.ENGINE_THREADS or "all"
    memory = settings.ENGINE_MEMORY_MB
    print(f"== one merge of {args.files} files, {rows:,} rows "
          f"(engine: {memory} MB; {threads} threads before, 1 now) ==")  # fmt: skip
    for way in ways:
        c, w = statistics.median(taken[way]), statistics.median(walls[way])
        print(f"{way:30s} CPU {c:6.2f} s ({c / rows * 1e6:.2f} us a row), wall {w:6.2f} s, "
              f"median of {args.repeats}")  # fmt: skip
    before, now_ = (statistics.median(taken[w]) for w in ways)
    print(f"ratio now / before (CPU)       {now_ / before:.2f}")


if __name__ == "__main__":
    main()
