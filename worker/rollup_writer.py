"""Upserting a Fold into the rollup tables, exactly under retries and concurrent workers.

Every statement is `INSERT ... ON CONFLICT DO UPDATE SET n = table.n + excluded.n`, so
concurrent workers add up instead of overwriting each other. Rows go in primary-key
order, so two workers touching the same buckets lock them in the same order (no
deadlocks). Hand-written SQL on the DBAPI cursor: SQLAlchemy's per-row parameter handling
cost more than the database for these wide rows. Large folds on PostgreSQL are COPYed
into a temporary table and merged with one INSERT ... SELECT.

Distinct users per day are counted, not recomputed: the upsert of a rollup_users row
RETURNs its new totals, and a row whose total equals what this batch sent was inserted
just now, by this transaction alone, so it adds one user to rollup_user_counts.
"""

from __future__ import annotations

from collections import defaultdict

from server.models import HIST_COLUMNS, HOUR_COLUMNS
from worker.rollups import GRAIN_DAY, Fold

DIMS = {
    "rollup_traffic": ("grain", "bucket", "hostname", "status", "bot"),
    "rollup_endpoints": ("grain", "bucket", "hostname", "status", "bot", "method", "endpoint"),
    "rollup_locations": ("grain", "bucket", "hostname", "status", "bot", "location"),
    "rollup_clients": ("grain", "bucket", "hostname", "status", "bot", "browser", "os", "device"),
    "rollup_users": ("grain", "hostname", "bot", "bucket", "user_key"),
    "rollup_user_counts": ("grain", "hostname", "bot", "bucket"),
}
MEASURES = {
    "rollup_traffic": ("n", "rt_sum"),
    "rollup_endpoints": ("n", "rt_sum", "n_query", "n_ids"),
    "rollup_locations": ("n", "rt_sum"),
    "rollup_clients": ("n", "rt_sum"),
    "rollup_users": ("n", "n_404", "last_seen", "location"),
    "rollup_user_counts": ("users", "users_ok"),
}
# Analytics connections never prepare statements (MEASURED.md), so executemany re-plans
# these wide upserts for every row: above a handful of rows COPY + one merge is faster.
COPY_THRESHOLD = 20


def write_fold(conn, key_id: int, fold: Fold) -> None:
    """Upsert a fold's rows, each table in primary-key order."""
    # Hourly rows carry a histogram, daily ones a histogram and hours, monthly ones hours.
    shapes: dict[tuple[bool, bool], list] = {}
    for key in sorted(fold.traffic):
        n, rt_sum, hist, hours = fold.traffic[key]
        row = (key_id, *key, n, rt_sum, *(hist or ()), *(hours or ()))
        shapes.setdefault((hist is not None, hours is not None), []).append(row)
    for (has_hist, has_hours), rows in sorted(shapes.items()):
        extra = (HIST_COLUMNS if has_hist else ()) + (HOUR_COLUMNS if has_hours else ())
        _upsert(conn, "rollup_traffic", extra, rows)
    for name, folded in (
        ("rollup_endpoints", fold.endpoints),
        ("rollup_locations", fold.locations),
        ("rollup_clients", fold.clients),
    ):
        with_hist, without = [], []
        for key in sorted(folded):
            acc = folded[key]
            if acc[-1] is None:
                without.append((key_id, *key, *acc[:-1]))
            else:
                with_hist.append((key_id, *key, *acc[:-1], *acc[-1]))
        _upsert(conn, name, HIST_COLUMNS, with_hist)
        _upsert(conn, name, (), without)
    _write_users(conn, key_id, fold.users)


def _write_users(conn, key_id: int, users: dict) -> None:
    daily, other = [], []
    for key in sorted(users):
        (daily if key[0] == GRAIN_DAY else other).append((key_id, *key, *users[key]))
    returned = _upsert(conn, "rollup_users", (), daily, returning=True)
    _upsert(conn, "rollup_users", (), other)
    # (grain, hostname, bot, bucket) -> [new users, users with a first non-404 request]
    counts: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for grain, host, bot, bucket, who, n, n_404 in returned:
        sent_n, sent_404 = users[(grain, host, bot, bucket, who)][:2]
        inserted = n == sent_n
        earlier_ok = (n - n_404) - (sent_n - sent_404)
        became_ok = n - n_404 > 0 and earlier_ok == 0
        if inserted or became_ok:
            acc = counts[(grain, host, bot, bucket)]
            acc[0] += inserted
            acc[1] += became_ok
    rows = [(key_id, *key, *counts[key]) for key in sorted(counts)]
    _upsert(conn, "rollup_user_counts", (), rows)


def _columns(table: str, extra: tuple[str, ...]) -> list[str]:
    return ["key_id", *DIMS[table], *MEASURES[table], *extra]


def _quote(name: str) -> str:
    return f'"{name}"'


def _merge_clause(table: str, columns: list[str], postgres: bool) -> str:
    keys = {"key_id", *DIMS[table]}
    sets = []
    for c in columns:
        if c in keys:
            continue
        if c == "last_seen":
            greatest = "GREATEST" if postgres else "MAX"
            sets.append(f"last_seen = {greatest}({table}.last_seen, excluded.last_seen)")
        elif c == "location" and table == "rollup_users":
            # The country of the user's latest request.
            sets.append(
                f"location = CASE WHEN excluded.last_seen >= {table}.last_seen "
                f"THEN excluded.location ELSE {table}.location END"
            )
        else:
            sets.append(f"{_quote(c)} = {table}.{_quote(c)} + excluded.{_quote(c)}")
    conflict = ", ".join(_quote(k) for k in ("key_id", *DIMS[table]))
    return f"ON CONFLICT ({conflict}) DO UPDATE SET {', '.join(sets)}"


def _upsert(
    conn, table: str, extra: tuple[str, ...], rows: list[tuple], returning: bool = False
) -> list[tuple]:
    """Upsert rows (already in key order); with `returning`, the users' new totals."""
    if not rows:
        return []
    postgres = conn.dialect.name == "postgresql"
    columns = _columns(table, extra)
    names = ", ".join(_quote(c) for c in columns)
    merge = _merge_clause(table, columns, postgres)
    back = (
        f" RETURNING {table}.grain, {table}.hostname, {table}.bot, {table}.bucket, "
        f"{table}.user_key, {table}.n, {table}.n_404"
        if returning
        else ""
    )
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        if postgres and len(rows) >= COPY_THRESHOLD:
            return _copy_merge(cursor, table, names, merge + back, rows, returning)
        mark = "%s" if postgres else "?"
        sql = f"INSERT INTO {table} ({names}) VALUES ({', '.join([mark] * len(columns))}) "
        sql += merge + back
        if not returning:
            cursor.executemany(sql, rows)
            return []
        out = []
        if postgres:
            cursor.executemany(sql, rows, returning=True)
            while True:
                out.extend(cursor.fetchall())
                if not cursor.nextset():
                    break
            return out
        # sqlite3's executemany drops RETURNING rows: one statement a row (local and fast).
        for row in rows:
            cursor.execute(sql, row)
            out.extend(cursor.fetchall())
        return out
    finally:
        cursor.close()


def _copy_merge(cursor, table: str, names: str, merge: str, rows, returning: bool) -> list:
    temp = f"tmp_{table}"
    cursor.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {temp} "
        f"(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    with cursor.copy(f"COPY {temp} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    order = ", ".join(_quote(k) for k in ("key_id", *DIMS[table]))
    cursor.execute(
        f"INSERT INTO {table} ({names}) SELECT {names} FROM {temp} ORDER BY {order} {merge}"
    )
    out = cursor.fetchall() if returning else []
    cursor.execute(f"DELETE FROM {temp}")
    return out
