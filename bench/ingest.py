"""End-to-end ingest throughput, beside a plain PostgreSQL COPY of the same rows.

Starts gunicorn + one RQ worker (what `make run` starts) on a fresh database and
a private Redis, POSTs 1,000-row batches from concurrent clients until every
row is stored, then COPYs the same rows from Python in the same run. Also times
50,000-row /api/data pages with 10 M rows stored.

    .venv/bin/python bench/ingest.py            # full run
    .venv/bin/python bench/ingest.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import random
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.services import (  # noqa: E402
    cpu_seconds,
    fresh_database,
    geoip_db,
    percentile,
    private_redis,
    progress,
    running_stack,
)

PATHS = [f"/v1/{r}" for r in ("users", "orders", "items", "search", "auth/login")] + [
    f"/v2/{r}/{{}}" for r in ("users", "orders", "items")
]
AGENTS = (
    [
        f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        f"Chrome/{v}.0.0.0 Safari/537.36"
        for v in range(100, 140)
    ]
    + [
        f"Mozilla/5.0 (iPhone; CPU iPhone OS 17_{v} like Mac OS X) AppleWebKit/605.1.15 "
        f"(KHTML, like Gecko) Version/17.{v} Mobile/15E148 Safari/604.1"
        for v in range(6)
    ]
    + ["python-requests/2.32.3", "curl/8.5.0", "Googlebot/2.1 (+http://www.google.com/bot.html)"]
)


def make_rows(n: int, rng: random.Random, start: datetime, span: timedelta) -> list[dict]:
    """Rows in time order, as a middleware sends them (each batch covers a short window)."""
    rows = []
    seconds = span.total_seconds()
    clients = [".".join(str(rng.randint(1, 223)) for _ in range(4)) for _ in range(5000)]
    for i in range(n):
        path = rng.choice(PATHS).format(rng.randint(1, 5000))
        rows.append(
            {
                "hostname": rng.choice(("api.example.com", "eu.example.com", "admin.example.com")),
                "ip_address": rng.choice(clients),
                "path": path,
                "user_agent": rng.choice(AGENTS),
                "method": rng.choice(("GET", "GET", "GET", "POST", "PUT", "DELETE")),
                "status": rng.choices((200, 201, 304, 400, 404, 500), (70, 8, 5, 5, 10, 2))[0],
                "response_time": round(rng.lognormvariate(3.5, 0.8), 1),
                "user_id": f"user-{rng.randint(1, 2000)}" if rng.random() < 0.7 else None,
                "created_at": (start + timedelta(seconds=seconds * i / n)).isoformat(),
            }
        )
    return rows


class Poster:
    """One keep-alive HTTP connection per thread."""

    def __init__(self, base: str) -> None:
        self.netloc = urlsplit(base).netloc
        self.local = threading.local()

    def post(self, body: bytes) -> tuple[int, float]:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection(self.netloc, timeout=120)
        started = time.perf_counter()
        conn.request(
            "POST",
            "/api/log-request",
            body=body,
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        response = conn.getresponse()
        response.read()
        return response.status, (time.perf_counter() - started) * 1000


def get_json(base: str, path: str, key: str | None = None, method: str = "GET"):
    conn = http.client.HTTPConnection(urlsplit(base).netloc, timeout=300)
    conn.request(method, path, headers={"X-AUTH-TOKEN": key} if key else {})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, json.loads(body) if body else None


def stored_rows(engine, key_id: int) -> int:
    from sqlalchemy import text

    with engine.connect() as conn:
        return conn.execute(
            text("SELECT count(*) FROM requests WHERE key_id = :k"), {"k": key_id}
        ).scalar()


def staged_batches(engine, key_id: int) -> int:
    from sqlalchemy import text

    with engine.connect() as conn:
        return conn.execute(
            text("SELECT count(*) FROM ingest_batches WHERE key_id = :k"), {"k": key_id}
        ).scalar()


def key_id_of(engine, key: str) -> int:
    from server.auth import lookup_key

    with engine.connect() as conn:
        return lookup_key(conn, key)


def end_to_end(base: str, engine, key: str, bodies: list[bytes], total: int, concurrency: int):
    key_id = key_id_of(engine, key)
    poster = Poster(base)
    latencies: list[float] = []
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for i, (status, ms) in enumerate(pool.map(poster.post, bodies), 1):
            if status != 201:
                raise SystemExit(f"ingest answered {status}")
            latencies.append(ms)
            if i % max(1, len(bodies) // 10) == 0:
                progress(f"  posted {i}/{len(bodies)} batches")
    posted = time.perf_counter() - started
    progress(f"  all batches accepted in {posted:.1f} s; waiting for the worker ...")
    # A batch leaves the staging table in the transaction that stores its rows, so no
    # staged batch left means every accepted row is stored (counted exactly below). This
    # poll scans a table of a few hundred short rows; counting the stored rows instead
    # would tax PostgreSQL mid-run.
    last = -1
    while staged := staged_batches(engine, key_id):
        if staged != last:
            progress(f"  {staged} batches still staged")
            last = staged
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    cpu = {part: used - cpu_before[part] for part, used in cpu_seconds().items()}
    if stored_rows(engine, key_id) != total:
        raise SystemExit(f"{stored_rows(engine, key_id)} rows stored of {total} accepted")
    while inbox_rows(engine):  # the dashboard's rollups catch up a moment later
        time.sleep(0.1)
    rolled = time.perf_counter() - started
    return total / elapsed, latencies, elapsed, rolled, cpu


def inbox_rows(engine) -> int:
    from sqlalchemy import text

    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM rollup_inbox")).scalar()


def copy_baseline(database_url: str, rows: list[dict], key_id: int, batch: int) -> float:
    """COPY of the same rows into a twin of the requests table, from Python, same session."""
    import psycopg

    conninfo = database_url.replace("postgresql+psycopg://", "postgresql://")
    from worker.enrich import REQUEST_COLUMNS as columns

    with psycopg.connect(conninfo, autocommit=False) as conn:
        conn.execute("CREATE TABLE requests_copy (LIKE requests INCLUDING ALL)")
        conn.commit()
        tuples = [
            (key_id, datetime.fromisoformat(r["created_at"]), r["hostname"], r["path"],
             r["method"], r["status"], round(r["response_time"]), r["ip_address"], None, None,
             r["user_id"], "FastAPI")
            for r in rows
        ]  # fmt: skip
        started = time.perf_counter()
        for i in range(0, len(tuples), batch):
            with (
                conn.cursor() as cur,
                cur.copy(f"COPY requests_copy ({', '.join(columns)}) FROM STDIN") as copy,
            ):
                for t in tuples[i : i + batch]:
                    copy.write_row(t)
            conn.commit()
        elapsed = time.perf_counter() - started
        conn.execute("DROP TABLE requests_copy")
        conn.commit()
    return len(tuples) / elapsed


def load_for_pages(database_url: str, key_id: int, count: int, rng: random.Random) -> None:
    """COPY `count` enriched rows for one key, spread over a year, for the page timing."""
    import psycopg

    conninfo = database_url.replace("postgresql+psycopg://", "postgresql://")
    start = datetime.now(UTC) - timedelta(days=365)
    step = timedelta(days=365) / count
    chunk = 200_000
    with psycopg.connect(conninfo) as conn:
        for offset in range(0, count, chunk):
            with (
                conn.cursor() as cur,
                cur.copy(
                    "COPY requests (key_id, created_at, hostname, path, method, status, "
                    "response_time, ip_address, location, user_id, framework) FROM STDIN"
                ) as copy,
            ):
                for i in range(offset, min(count, offset + chunk)):
                    copy.write_row(
                        (key_id, start + step * i, "api.example.com", f"/v1/items/{i % 5000}",
                         "GET", 200 if i % 10 else 404, 20 + i % 300,
                         f"10.0.{i % 256}.{i % 250 + 1}", "US", f"user-{i % 2000}", "FastAPI")
                    )  # fmt: skip
            conn.commit()
            progress(f"  loaded {min(count, offset + chunk):,}/{count:,} rows")
        progress("  VACUUM ANALYZE requests (sets the visibility map for index-only scans)")
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE requests")


def time_pages(base: str, key: str, pages: list[int], repeats: int = 5) -> dict[int, float]:
    """Median time from request to the last byte of a full page (the client's parse excluded)."""
    out = {}
    for page in pages:
        times = []
        for _ in range(repeats):
            conn = http.client.HTTPConnection(urlsplit(base).netloc, timeout=300)
            started = time.perf_counter()
            conn.request("GET", f"/api/data?page={page}", headers={"X-AUTH-TOKEN": key})
            response = conn.getresponse()
            body = response.read()
            times.append(time.perf_counter() - started)
            conn.close()
            rows = len(json.loads(body))
            if response.status != 200 or rows != 50_000:
                raise SystemExit(f"page {page}: status {response.status}, {rows} rows")
        out[page] = statistics.median(times)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=300_000, help="rows to ingest end to end")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--page-rows", type=int, default=10_000_000,
                        help="rows stored for the /api/data page timing (0 skips it)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="60k rows, pages over 200k rows")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.page_rows = 60_000, 200_000

    rng = random.Random(7)
    now = datetime.now(UTC)
    progress(f"building {args.rows:,} rows in {args.rows // args.batch} batches of {args.batch}")
    rows = make_rows(args.rows, rng, now - timedelta(hours=23), timedelta(hours=23))

    with fresh_database() as url, private_redis() as redis_url:
        from server.db import init_engine

        engine = init_engine(url)
        with running_stack(url, redis_url, web_workers=args.web_workers) as base:
            progress(f"web (gunicorn, {args.web_workers} workers) + 1 RQ worker at {base}")
            _, key = get_json(base, "/api/keys", method="POST")
            key = key["api_key"]
            bodies = [
                gzip.compress(json.dumps({"api_key": key, "framework": "FastAPI",
                                          "privacy_level": 0,
                                          "requests": rows[i : i + args.batch]}).encode(), 1)
                for i in range(0, len(rows), args.batch)
            ]  # fmt: skip
            # Warm up: user agents parsed, connections open.
            warm = make_rows(2000, rng, now - timedelta(hours=1), timedelta(minutes=30))
            warm_key = get_json(base, "/api/keys", method="POST")[1]["api_key"]
            warm_bodies = [
                gzip.compress(
                    json.dumps({"api_key": warm_key, "requests": warm[i : i + 1000]}).encode()
                )
                for i in (0, 1000)
            ]
            end_to_end(base, engine, warm_key, warm_bodies, 2000, 2)
            progress(f"end to end: {args.concurrency} concurrent clients")
            e2e_rate, latencies, elapsed, rolled, cpu = end_to_end(
                base, engine, key, bodies, len(rows), args.concurrency
            )
            progress("checking every row is queryable through /api/data ...")
            seen, page = 0, 1
            while True:
                status, body = get_json(base, f"/api/data?page={page}", key)
                seen += len(body)
                if len(body) < 50_000:
                    break
                page += 1
            assert seen == len(rows), (seen, len(rows))

            progress("COPY baseline (same rows, same session)")
            copy_rate = copy_baseline(url, rows, key_id_of(engine, key), args.batch)

            page_times = {}
            if args.page_rows:
                progress(f"loading {args.page_rows:,} rows for the page timing")
                _, page_key = get_json(base, "/api/keys", method="POST")
                page_key = page_key["api_key"]
                load_for_pages(url, key_id_of(engine, page_key), args.page_rows, rng)
                last = args.page_rows // 50_000
                page_times = time_pages(base, page_key, sorted({1, max(1, last // 2), last}))

        engine.dispose()

    print()
    print("== ingest benchmark (web + 1 worker + PostgreSQL on this machine) ==")
    geo = geoip_db()
    print(f"country lookup               {'on: ' + geo if geo else 'off (run make geoip)'}")
    print(f"rows ingested end to end     {len(rows):>12,} in {elapsed:.1f} s")
    print(f"end-to-end rows/s            {e2e_rate:>12,.0f}   target >= 30,000")
    print(f"  CPU meanwhile (2 cores = {2 * elapsed:.1f} s)  "
          + ", ".join(f"{part} {seconds:.1f} s" for part, seconds in cpu.items()))  # fmt: skip
    print(f"  rollups caught up after    {rolled:>12.1f} s  ({len(rows) / rolled:,.0f} rows/s)")
    print(f"COPY rows/s (same rows)      {copy_rate:>12,.0f}   batches of {args.batch}")
    print(f"ratio end-to-end / COPY      {e2e_rate / copy_rate:>12.2f}   target >= 0.30")
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    print(f"201 latency, {args.batch}-row batch  p50 {p50:.1f} ms · p99 {p99:.1f} ms "
          f"({args.concurrency} concurrent clients)")  # fmt: skip
    for page, seconds in page_times.items():
        print(f"/api/data page {page:>4} (50,000 rows of {args.page_rows:,})  "
              f"{seconds:.2f} s median of 5   target <= 1 s")  # fmt: skip


if __name__ == "__main__":
    main()
