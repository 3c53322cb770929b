"""Dashboard benchmark: a full overview refresh at 10 M rows, rollups vs the naive way.

Creates a fresh PostgreSQL database, loads --rows requests for one key spread over a
year (enriched rows COPYed and staged for the rollups by worker.enrich.store_enriched,
the enrichment job's writes, then the rollup refresh job's SQL), then for 24 h,
30 days, 1 year and all time times:

- the overview refresh exactly as the page's callback runs it (dash_app.overview.refresh:
  every panel's query, pandas shaping and Plotly figures), median of 5, in a fresh
  process whose peak RSS is reported (the web process's cost);
- the naive way, in another process: the period's raw rows read into pandas (COPY -> CSV
  -> read_csv, the fastest way we measured) and every panel aggregated there.

    python bench/dashboard.py                 # 10,000,000 rows (about 15 minutes to load)
    python bench/dashboard.py --rows 200000   # a quick smoke run
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import random
import resource
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ADMIN_URL = os.environ.get(
    "BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
PERIODS = ("24h", "30d", "1y", "all")
TARGET_SECONDS = 1.0
TARGET_RSS_MB = 500
BENCH_USERS = 5_000


# --- database ------------------------------------------------------------------------------


def create_database() -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"apia_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


# --- loading -------------------------------------------------------------------------------


def load(url: str, rows: int, now: datetime) -> int:
    """Generate `rows` enriched requests over the year before `now`; returns the key id."""
    from server import demo
    from server.auth import create_key
    from server.db import init_engine
    from worker import useragent
    from worker.enrich import store_enriched

    engine = init_engine(url)
    with engine.begin() as conn:
        key_id, _ = create_key(conn)
    rng = random.Random(11)
    users = demo.make_users(rng, BENCH_USERS)
    agents = useragent.resolve(engine, {a for _w, a in demo.AGENTS})
    origin = now - timedelta(days=365)
    hours = [origin + timedelta(hours=h) for h in range(365 * 24)]
    # Scale the demo's daily and weekly rhythm to the wanted total.
    weights = [demo.hourly_rate(h, origin) for h in hours]
    scale = rows / sum(weights)
    written = 0
    started = time.monotonic()
    chunk = []
    for i, hour in enumerate(hours):
        expected = weights[i] * scale
        count = int(expected) + (1 if rng.random() < expected - int(expected) else 0)
        chunk.extend(demo.generate_rows(rng, key_id, users, agents, hour, 3600, count))
        if len(chunk) >= 50_000 or i == len(hours) - 1:
            store_enriched(engine, chunk)
            written += len(chunk)
            chunk = []
            _progress(written, rows, started)
    print(file=sys.stderr)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    return key_id


def _progress(done: int, total: int, started: float) -> None:
    elapsed = time.monotonic() - started
    rate = done / elapsed if elapsed else 0
    width = 40
    filled = int(width * min(done, total) / total)
    print(
        f"\r  loading [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} rows "
        f"({rate:,.0f} rows/s, {elapsed:,.0f} s)",
        end="",
        file=sys.stderr,
        flush=True,
    )


# --- measuring -----------------------------------------------------------------------------


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_rollups(url: str, key_id: int, now: datetime, repeat: int, queue) -> None:
    """In a fresh process: median full-refresh time per period, then this process's peak RSS."""
    from dash_app.filters import Filters
    from dash_app.overview import refresh
    from server.db import init_engine

    engine = init_engine(url)
    results = {}
    for period in PERIODS:
        filters = Filters(period=period)
        times, requests = [], 0
        for _ in range(repeat):
            started = time.perf_counter()
            data, _out = refresh(engine, key_id, filters, now)
            times.append(time.perf_counter() - started)
            requests = data.summary["requests"]
        results[period] = (statistics.median(times), requests, data.users)
    queue.put((results, _peak_rss_mb()))


def naive_overview(conn, key_id: int, since: datetime | None, until: datetime):
    """Every panel from the period's raw rows in pandas (what shipping raw rows amounts to)."""
    import numpy as np
    import pandas as pd

    from worker.rollups import api_version, template_path

    where = "r.key_id = %s AND r.created_at < %s" + (" AND r.created_at >= %s" if since else "")
    params = [key_id, until] + ([since] if since else [])
    sql = (
        "COPY (SELECT r.created_at, r.hostname, r.path, r.method, r.status, r.response_time, "
        "host(r.ip_address) AS ip, r.location, r.user_id, u.browser, u.os, u.device "
        "FROM requests r LEFT JOIN user_agents u ON u.id = r.user_agent_id "
        f"WHERE {where}) TO STDOUT WITH CSV HEADER"
    )
    raw = conn.connection.dbapi_connection
    buffer = io.BytesIO()
    with raw.cursor() as cursor, cursor.copy(sql, params) as copy:
        for block in copy:
            buffer.write(block)
    buffer.seek(0)
    df = pd.read_csv(buffer)
    del buffer
    df["created_at"] = pd.to_datetime(df["created_at"], utc=True, format="ISO8601")
    n = len(df)
    if not n:
        return {"requests": 0, "users": 0}
    user = df["ip"].fillna(df["user_id"])
    templates = {p: template_path(p) for p in df["path"].unique()}
    endpoint = df["path"].map(templates)
    hours = df["created_at"].dt.floor("h")
    return {
        "requests": n,
        "success": float((df["status"] < 400).mean()),
        "users": int(user.nunique()),
        "percentiles": np.percentile(df["response_time"], [25, 50, 75, 95, 99]).tolist(),
        "histogram": np.histogram(df["response_time"], bins=64)[0].tolist(),
        "status": df["status"].value_counts().to_dict(),
        "endpoints": df.groupby([df["method"], endpoint])["status"]
        .agg(["size", lambda s: (s >= 400).sum()])
        .nlargest(50, "size")
        .shape,
        "versions": endpoint.map(api_version).value_counts().to_dict(),
        "activity": df.groupby(df["created_at"].dt.floor("D")).agg(
            requests=("status", "size"), p50=("response_time", "median")
        ),
        "activity_users": user.groupby(df["created_at"].dt.floor("D")).nunique(),
        "location": df["location"].value_counts().to_dict(),
        "clients": [df[c].value_counts().to_dict() for c in ("browser", "os", "device")],
        "hour": hours.dt.hour.value_counts().to_dict(),
        "weekday": hours.dt.weekday.value_counts().to_dict(),
        "top_users": user.value_counts().head(10).to_dict(),
    }


def measure_naive(url: str, key_id: int, now: datetime, queue) -> None:
    from dash_app.filters import window_for
    from server.db import init_engine

    engine = init_engine(url)
    results = {}
    for period in PERIODS:
        window = window_for(period, now)
        since = datetime.fromtimestamp(window.since, UTC) if window.since else None
        until = datetime.fromtimestamp(window.until, UTC)
        started = time.perf_counter()
        with engine.connect() as conn:
            out = naive_overview(conn, key_id, since, until)
        results[period] = (time.perf_counter() - started, out["requests"], out["users"])
    queue.put((results, _peak_rss_mb()))


def in_child(target, *args):
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="requests to load")
    parser.add_argument("--repeat", type=int, default=5, help="refreshes per period (median)")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive comparison")
    parser.add_argument("--keep", action="store_true", help="keep the database (prints its URL)")
    args = parser.parse_args(argv)

    now = datetime.now(UTC)
    url = create_database()
    try:
        from server.cli import upgrade_database

        upgrade_database(url)
        print(f"loading {args.rows:,} requests for one key over a year ...", file=sys.stderr)
        started = time.monotonic()
        key_id = load(url, args.rows, now)
        print(f"loaded in {time.monotonic() - started:,.0f} s", file=sys.stderr)
        print("measuring the dashboard (rollups) ...", file=sys.stderr)
        fast, fast_rss = in_child(measure_rollups, url, key_id, now, args.repeat)
        slow, slow_rss = None, None
        if not args.no_naive:
            print("measuring the naive way (raw rows into pandas) ...", file=sys.stderr)
            slow, slow_rss = in_child(measure_naive, url, key_id, now)
        report(args, fast, fast_rss, slow, slow_rss)
        ok = all(t <= TARGET_SECONDS for t, _n, _u in fast.values()) and fast_rss <= TARGET_RSS_MB
        return 0 if ok else 1
    finally:
        if args.keep:
            print(f"kept database: {url}", file=sys.stderr)
        else:
            drop_database(url)


def report(args, fast, fast_rss, slow, slow_rss) -> None:
    print()
    print(f"Dashboard overview refresh, {args.rows:,} rows for one key over a year (PostgreSQL)")
    print(f"rollups: median of {args.repeat}; naive: raw rows -> pandas, one run")
    header = f"{'period':<8} {'requests':>11} {'users':>8} {'rollups':>10}"
    if slow:
        header += f" {'naive':>10} {'naive/rollups':>14}"
    print(header)
    for period in PERIODS:
        seconds, requests, users = fast[period]
        line = f"{period:<8} {requests:>11,} {users:>8,} {seconds:>9.3f}s"
        if slow:
            naive_seconds, naive_requests, naive_users = slow[period]
            line += f" {naive_seconds:>9.2f}s {naive_seconds / seconds:>13.1f}x"
            if (naive_requests, naive_users) != (requests, users):
                line += f"  MISMATCH naive={naive_requests:,}/{naive_users:,}"
        print(line)
    line = f"peak RSS: rollups process {fast_rss:,.0f} MB (target <= {TARGET_RSS_MB} MB)"
    if slow_rss:
        line += f", naive process {slow_rss:,.0f} MB ({slow_rss / fast_rss:.1f}x)"
    print(line)
    verdict = all(t <= TARGET_SECONDS for t, _n, _u in fast.values())
    print(f"target <= {TARGET_SECONDS:.1f} s for every period: {'met' if verdict else 'MISSED'}")


if __name__ == "__main__":
    sys.exit(main())
