"""The enrichment worker alone, beside a plain COPY of the same rows in the same run.

Stages batches in a fresh PostgreSQL database exactly as the web does (validated rows,
one staging row a batch), then calls server.ingest.staging.process_batch for each, in order, in
this process: claim (with its batch groups), user agents, countries, privacy, derived
columns, the COPY into the hot table, commit. RQ's own bookkeeping is left out (no Redis):
this is the worker's share of bench/ingest.py's end-to-end figure, without the web.

    python bench/worker.py              # 300 batches of 1,000 rows
    python bench/worker.py --batches 50
    python bench/worker.py --group-rows 1000   # no batch groups: one batch a transaction
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import copy_baseline, make_rows  # noqa: E402
from bench.services import fresh_database, geoip_db, progress  # noqa: E402


def stage(engine, key_id: int, rows: list[dict], batch: int, now: datetime) -> list[int]:
    from sqlalchemy import insert

    from server.ingest.fields import encode_rows, validate_rows
    from server.models import ingest_batches

    ids = []
    with engine.begin() as conn:
        for start in range(0, len(rows), batch):
            staged, _ = validate_rows(rows[start : start + batch], 0, now)
            ids.append(
                conn.execute(
                    insert(ingest_batches)
                    .values(key_id=key_id, created_at=now, framework="FastAPI", privacy_level=0,
                            row_count=len(staged), payload=encode_rows(staged), attempts=0)
                    .returning(ingest_batches.c.id)
                ).scalar_one()
            )  # fmt: skip
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument(
        "--group-rows",
        type=int,
        default=None,
        help="server.ingest.staging.GROUP_ROWS for this run (the batch size itself: no groups)",
    )
    args = parser.parse_args()

    rng = random.Random(7)
    now = datetime.now(UTC)
    total = args.batches * args.batch
    rows = make_rows(total, rng, now - timedelta(hours=23), timedelta(hours=23))
    with fresh_database("apia_bench_worker") as url:
        from sqlalchemy import text

        import server.ingest.staging as enrich
        import server.jobs  # noqa: F401  (declares the jobs the worker asks for)
        import server.queue
        from server.db import init_engine
        from server.ingest import geo

        engine = init_engine(url)
        if args.group_rows is not None:
            enrich.GROUP_ROWS = args.group_rows
        geo.init_geo(geoip_db() or "")
        # No Redis here: nothing to enqueue and no queued jobs to take back.
        server.queue.init_queue("")
        enrich.queue.ask = lambda *_args, **_kwargs: True  # no export asked for, no queue
        enrich._forget = lambda ids: None
        with engine.begin() as conn:
            key_id = conn.execute(
                text("INSERT INTO api_keys (key_hash, created_at, last_active_at, is_demo) "
                     "VALUES (:h, now(), now(), false) RETURNING id"),
                {"h": random.randbytes(32)},
            ).scalar_one()  # fmt: skip
        progress(f"warming up (user agents parsed, connections open) on {args.batch} rows")
        enrich.process_batch(stage(engine, key_id, rows[: args.batch], args.batch, now)[0])
        progress(f"staging {total:,} rows in {args.batches} batches")
        ids = stage(engine, key_id, rows, args.batch, now)
        progress("processing them")
        started = time.perf_counter()
        written = 0
        for i, batch_id in enumerate(ids, 1):
            written += enrich.process_batch(batch_id)
            if i % max(1, len(ids) // 5) == 0:
                progress(f"  {i}/{len(ids)} jobs, {written:,} rows stored")
        elapsed = time.perf_counter() - started
        assert written == total, (written, total)
        progress("COPY baseline (same rows, same session)")
        copy_rate = copy_baseline(url, rows, key_id, args.batch)
        engine.dispose()

    rate = total / elapsed
    print()
    print("== worker benchmark (process_batch in this process, PostgreSQL, no RQ) ==")
    print(f"country lookup               {'on' if geoip_db() else 'off (run make geoip)'}")
    print(f"batch groups                 up to {enrich_group_rows(args):,} rows a transaction")
    print(f"rows processed               {total:>12,} in {elapsed:.2f} s")
    print(f"worker rows/s                {rate:>12,.0f}   {elapsed / total * 1e6:.1f} ms/1000 rows")
    print(f"COPY rows/s (same rows)      {copy_rate:>12,.0f}   batches of {args.batch}")
    print(f"ratio worker / COPY          {rate / copy_rate:>12.2f}")


def enrich_group_rows(args) -> int:
    import server.ingest.staging as enrich

    return enrich.GROUP_ROWS if args.group_rows is None else args.group_rows


if __name__ == "__main__":
    main()
