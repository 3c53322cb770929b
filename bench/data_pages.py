"""Building a 50,000-row /api/data page: the JSON text PostgreSQL writes for it.

Times `fetch_page_json` (what GET /api/data runs, minus HTTP) on a fresh database holding
`--rows` rows for one key, alternating, page by page, the current builder of the row
objects (`to_json` of each value between constant keys: `{"key":value,...}`) with the
baseline in the same run: PostgreSQL's `json_build_object`, which the data API used
before (`{"key" : value, ...}`). Checks both give the same rows; prints the median time
and size of each page and the speed-up. (`?compact=true` arrays are built as before.)

    .venv/bin/python bench/data_pages.py                 # 2,000,000 rows
    .venv/bin/python bench/data_pages.py --rows 200000   # smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import load_for_pages  # noqa: E402
from bench.services import fresh_database, progress  # noqa: E402

PAGE_ROWS = 50_000


def baseline_builder(values: list, names: tuple[str, ...]):
    """What the data API used before: PostgreSQL's json_build_object, as text."""
    from sqlalchemy import Text, cast, func

    pairs = [x for pair in zip(names, values, strict=True) for x in pair]
    return cast(func.json_build_object(*pairs), Text)


@contextlib.contextmanager
def builder(name: str):
    from server import requests_query

    current = requests_query._pg_json_object
    if name == "baseline":
        requests_query._pg_json_object = baseline_builder
    try:
        yield
    finally:
        requests_query._pg_json_object = current


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows stored for the key")
    parser.add_argument("--repeats", type=int, default=5, help="timings of each page")
    args = parser.parse_args()
    if args.rows < PAGE_ROWS:
        parser.error(f"--rows must be at least {PAGE_ROWS:,} (one full page)")

    from server.auth import create_key
    from server.db import init_engine
    from server.requests_query import RequestFilter, fetch_page_json

    with fresh_database() as url:
        engine = init_engine(url)
        with engine.begin() as conn:
            key_id, _ = create_key(conn)
        progress(f"loading {args.rows:,} rows for one key")
        load_for_pages(url, key_id, args.rows, random.Random(7))
        last = args.rows // PAGE_ROWS
        pages = sorted({1, last // 2 or 1, last})
        times: dict[tuple[str, int], list[float]] = {}
        texts: dict[tuple[str, int], str] = {}
        total = args.repeats * len(pages) * 2
        for repeat in range(args.repeats):
            # Alternate which builder goes first, so neither always meets a warm cache.
            order = ("current", "baseline") if repeat % 2 == 0 else ("baseline", "current")
            for page in pages:
                for name in order:
                    with builder(name), engine.connect() as conn:
                        started = time.perf_counter()
                        body, count = fetch_page_json(
                            conn, RequestFilter(key_id=key_id), page, PAGE_ROWS, False
                        )
                        elapsed = time.perf_counter() - started
                    if count != PAGE_ROWS:
                        sys.exit(f"page {page}: {count:,} rows, expected {PAGE_ROWS:,}")
                    times.setdefault((name, page), []).append(elapsed)
                    texts[(name, page)] = body
                progress(f"  {sum(map(len, times.values()))}/{total} pages timed")
        for page in pages:
            if json.loads(texts[("current", page)]) != json.loads(texts[("baseline", page)]):
                sys.exit(f"page {page}: the two builders give different rows")

    print()
    print(
        f"fetch_page_json, {PAGE_ROWS:,}-row pages of {args.rows:,} rows, median of "
        f"{args.repeats} (both builders give the same rows: checked)"
    )
    print(f"{'page':>6}{'current s':>11}{'MB':>7}{'baseline s':>12}{'MB':>7}{'speed-up':>10}")
    for page in pages:
        now = statistics.median(times[("current", page)])
        before = statistics.median(times[("baseline", page)])
        size_now = len(texts[("current", page)].encode()) / 1e6
        size_before = len(texts[("baseline", page)].encode()) / 1e6
        print(
            f"{page:>6}{now:>11.3f}{size_now:>7.1f}{before:>12.3f}{size_before:>7.1f}"
            f"{before / now:>9.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
