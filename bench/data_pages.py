"""A 50,000-row /api/data page out of the columnar store, deep pages included.

Loads --rows requests for one key over a year into the store (bench/lake_load.py) and
some hot rows, then times `fetch_page_json` (what GET /api/data runs, minus HTTP) for the
first, middle and last pages, objects and compact arrays, alternating with the naive way
in the same run: one ORDER BY over every row with LIMIT/OFFSET (the page's days are not
found first). Checks both return the same text; prints medians and the speed-up.

    .venv/bin/python bench/data_pages.py                 # 10,000,000 rows
    .venv/bin/python bench/data_pages.py --rows 300000   # smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.services import fresh_database, progress  # noqa: E402

PAGE_ROWS = 50_000
TARGET_SECONDS = 1.0


@contextlib.contextmanager
def naive():
    """Pages found by sorting every matching row (no per-day counts first). Sorting ten
    million rows does not fit the engine's 256 MB (out of memory), so the naive way gets
    4 GB: a baseline that runs, not a fair fight on memory."""
    from server.lake import engine
    from server.lake import pages as rows

    current = rows.page_window
    rows.page_window = lambda _rows, where, offset, _size, newest_first: (where, offset)
    db = engine.database()
    limit = db.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    db.execute("SET memory_limit = '4GB'")
    try:
        yield
    finally:
        rows.page_window = current
        db.execute(f"SET memory_limit = '{limit}'")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows stored for the key")
    parser.add_argument("--repeats", type=int, default=3, help="timings of each page")
    args = parser.parse_args()
    if args.rows < PAGE_ROWS:
        parser.error(f"--rows must be at least {PAGE_ROWS:,} (one full page)")

    from bench.dashboard import _hot_rows, bind, settings_for
    from bench.lake_load import load_key
    from server.keys.api_keys import create_key
    from server.stats.raw import RequestFilter, data_page_json

    with fresh_database() as url, tempfile.TemporaryDirectory() as data_dir:
        settings = settings_for(url, data_dir, 256)
        db = bind(settings)
        with db.begin() as conn:
            key_id, _ = create_key(conn)
        now = datetime.now(UTC)
        progress(f"loading {args.rows:,} rows for one key")
        load_key(db, settings, key_id, args.rows, now)
        _hot_rows(db, key_id, 5_000, now)
        total = args.rows + 5_000
        last = -(-total // PAGE_ROWS)
        pages = sorted({1, max(1, last // 2), last})
        filters = RequestFilter(key_id=key_id)
        results = []
        for page in pages:
            for compact in (False, True):
                ours, theirs = [], []
                for _ in range(args.repeats):
                    started = time.perf_counter()
                    body, count = data_page_json(filters, page, PAGE_ROWS, compact)
                    ours.append(time.perf_counter() - started)
                    with naive():
                        started = time.perf_counter()
                        expected, _ = data_page_json(filters, page, PAGE_ROWS, compact)
                        theirs.append(time.perf_counter() - started)
                    assert body == expected, f"page {page}: the two ways disagree"
                want = PAGE_ROWS if page < last else total - (last - 1) * PAGE_ROWS
                assert count == want, (page, count, want)
                results.append((page, compact, statistics.median(ours), statistics.median(theirs),
                                len(body)))  # fmt: skip
                progress(f"  page {page} {'compact' if compact else 'objects'} done")
    print()
    print(f"== /api/data pages, {total:,} rows for one key ({PAGE_ROWS:,} a page) ==")
    worst = 0.0
    for page, compact, ours, theirs, size in results:
        worst = max(worst, ours)
        print(
            f"page {page:>4} {'compact' if compact else 'objects':<8} {ours:6.3f} s "
            f"(naive {theirs:6.3f} s, {theirs / ours:4.1f}x)  {size / 1e6:5.1f} MB"
        )
    print(f"slowest page {worst:.3f} s; target <= {TARGET_SECONDS} s: "
          f"{'met' if worst <= TARGET_SECONDS else 'MISSED'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
