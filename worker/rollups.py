"""Rollups: per-key hourly, daily and monthly aggregates the dashboard reads.

The enrichment job stages each enriched row in rollup_inbox, in the batch's own
transaction (so a batch is staged exactly once); a refresh job then moves staged rows
into the rollup tables with one INSERT ... SELECT ... GROUP BY ... ON CONFLICT DO UPDATE
per table, and deletes them in that same transaction (so each is counted exactly once).
Aggregating in SQL, over many batches at a time, keeps rollups off the ingest path.
This module also holds the bucket, path and user rules the dashboard shares.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache

from server.db import copy_rows
from server.models import HIST_BUCKETS, rollup_inbox

HOUR = 3600
DAY = 86400
GRAIN_HOUR = 1
GRAIN_DAY = 2
GRAIN_MONTH = 3  # rollup_users only

# --- response-time histogram ---------------------------------------------------------------
# Buckets 0-15 hold exactly 0-15 ms; from 16 ms on they grow by HIST_BASE (about 33 %), so
# bucket 63 starts near 3 hours. HIST_LOWER[i] is the smallest integer in bucket i.
EXACT_BUCKETS = 16
HIST_BASE = 1.33


def _lower_bounds() -> tuple[int, ...]:
    bounds = list(range(EXACT_BUCKETS))
    for i in range(EXACT_BUCKETS, HIST_BUCKETS):
        bounds.append(max(bounds[-1] + 1, math.ceil(EXACT_BUCKETS * HIST_BASE ** (i - 16))))
    return tuple(bounds)


HIST_LOWER = _lower_bounds()
# The exclusive upper bound of each bucket (the last one is open; this is only for display).
HIST_UPPER = (*HIST_LOWER[1:], math.ceil(HIST_LOWER[-1] * HIST_BASE))


def rt_bucket(response_time: int) -> int:
    """The histogram bucket of a response time in milliseconds."""
    if response_time < EXACT_BUCKETS:
        return max(0, int(response_time))
    return bisect_right(HIST_LOWER, response_time) - 1


# --- paths -----------------------------------------------------------------------------------
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_HEX = re.compile(r"^(?=.*\d)[0-9a-fA-F]{16,}$")
_NUMBER = re.compile(r"^\d+$")
# Long opaque tokens (base64 ids, slugs with many digits); short words stay as they are.
_TOKEN = re.compile(r"^(?=(?:.*\d){4})[A-Za-z0-9_\-]{16,}$")
_VERSION = re.compile(r"^v\d+$", re.IGNORECASE)


def strip_query(path: str) -> str:
    return path.split("?", 1)[0].split("#", 1)[0] or "/"


def _is_id(segment: str) -> bool:
    return bool(
        _NUMBER.match(segment)
        or _UUID.match(segment)
        or _HEX.match(segment)
        or _TOKEN.match(segment)
    )


def template_path(path: str) -> str:
    """`/v1/users/123?x=1` -> `/v1/users/{id}`: no query string, ids replaced by {id}."""
    bare = strip_query(path)
    return "/".join("{id}" if _is_id(s) else s for s in bare.split("/"))[:255]


def api_version(path: str) -> str:
    """The first path segment like `v1`/`V2`, lower-cased, or '' when there is none."""
    for segment in strip_query(path).split("/"):
        if _VERSION.match(segment):
            return segment.lower()
    return ""


def user_key(ip_address: str | None, user_id: str | None) -> str:
    """Who made a request: the IP address, or the user id where there is no IP ('' if neither)."""
    if ip_address:
        return str(ip_address)
    return user_id or ""


# --- folding a batch -------------------------------------------------------------------------
ANY_HOST = "*"
ANY_BOT = 2


def month_start(day_bucket: int) -> int:
    """The epoch second at which the UTC month holding `day_bucket` starts."""
    moment = datetime.fromtimestamp(day_bucket, UTC)
    return int(datetime(moment.year, moment.month, 1, tzinfo=UTC).timestamp())


# --- staging (in the enrichment transaction) --------------------------------------------------

INBOX_COLUMNS = tuple(c.name for c in rollup_inbox.c if c.name != "id")


@lru_cache(maxsize=50_000)
def path_info(path: str) -> tuple[str, int, int]:
    """(endpoint template, had a query string, had ids) of a raw path."""
    endpoint = template_path(path)
    return endpoint, 1 if "?" in path else 0, 1 if endpoint != strip_query(path)[:255] else 0


@lru_cache(maxsize=4_096)
def _month_of(day: int) -> int:
    return month_start(day)


@lru_cache(maxsize=4_096)
def _minute_epoch(minute: str) -> int:
    return int(datetime.fromisoformat(minute).replace(tzinfo=UTC).timestamp())


def epoch_seconds(created_at: datetime | str) -> int:
    """Whole epoch seconds of a datetime or of ISO 8601 text.

    Staged rows carry UTC text (server.ingest: `YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00`); rows
    of a batch share their minutes, so that part is parsed once and cached.
    """
    if created_at.__class__ is not str:
        return int(created_at.timestamp())
    if created_at[16:17] == ":" and created_at.endswith("+00:00"):
        return _minute_epoch(created_at[:16]) + int(created_at[17:19])
    return int(datetime.fromisoformat(created_at).timestamp())


# Histogram buckets of the response times most requests have, looked up, not searched.
_BUCKET_OF = tuple(rt_bucket(ms) for ms in range(10_000))


def inbox_rows(rows: Iterable) -> list[tuple]:
    """Enriched rows (worker.enrich.EnrichedRow) as rollup_inbox tuples (INBOX_COLUMNS)."""
    out = []
    append = out.append
    epoch, bucket_of, fast = epoch_seconds, _BUCKET_OF, len(_BUCKET_OF)
    for (key_id, created_at, hostname, path, method, status, rt, ip, location, _, user_id,
         _, browser, os_family, device, is_bot) in rows:  # fmt: skip
        ts = epoch(created_at)
        day = ts - ts % DAY
        endpoint, has_query, has_ids = path_info(path)
        location = location or ""
        append(
            (
                key_id,
                ts - ts % HOUR,
                day,
                _month_of(day),
                (ts - day) // HOUR,
                hostname or "",
                status,
                1 if is_bot else 0,
                method,
                endpoint,
                has_query,
                has_ids,
                location,
                browser or "",
                os_family or "",
                device or "",
                # user_key(): the IP, else the user id, else ''.
                (ip or user_id or "")[:255],
                f"{ts:010d}{location}",
                1 if status == 404 else 0,
                rt,
                bucket_of[rt] if 0 <= rt < fast else rt_bucket(rt),
            )
        )
    return out


def stage_rollups(conn, rows: list) -> None:
    """Put enriched rows in the rollup inbox, inside the caller's (the batch's) transaction."""
    values = inbox_rows(rows)
    if not values:
        return
    if conn.dialect.name == "postgresql":
        copy_rows(conn, "rollup_inbox", INBOX_COLUMNS, values)
        return
    marks = ", ".join("?" * len(INBOX_COLUMNS))
    conn.connection.dbapi_connection.cursor().executemany(
        f"INSERT INTO rollup_inbox ({', '.join(INBOX_COLUMNS)}) VALUES ({marks})", values
    )


def write_rollups(engine, rows: list) -> None:
    """Stage rows, then bring the rollups up to date (the demo seeder, loaders, tests).

    The enrichment job only stages; a refresh job aggregates many batches at once.
    """
    with engine.begin() as conn:
        stage_rollups(conn, rows)
    refresh_rollups(engine)


# --- aggregation ---------------------------------------------------------------------------

# One refresh transaction moves at most this many staged rows.
REFRESH_LIMIT = 200_000
# Refreshes hold this PostgreSQL advisory lock, so they run one at a time (the distinct
# user counts compare against rollup_users as it was before the refresh).
ADVISORY_LOCK = 72_045_811
SOURCE = "rollup_inbox"


def refresh_rollups(engine=None) -> int:
    """The job: add every staged row to the rollups; returns how many rows were added."""
    from server.db import get_engine

    engine = engine or get_engine()
    total = 0
    while True:
        added = _refresh_once(engine, REFRESH_LIMIT)
        total += added
        if added < REFRESH_LIMIT:
            return total


def _refresh_once(engine, limit: int) -> int:
    """Aggregate up to `limit` staged rows and delete them, in one transaction.

    Every statement must see the same rows: on PostgreSQL the transaction is REPEATABLE
    READ (one snapshot; rows committed meanwhile wait for the next refresh), and the lock
    is taken before it starts, so the snapshot already holds the previous refresh's work.
    SQLite takes its write lock first, which freezes the database for the transaction.
    """
    postgres = engine.dialect.name == "postgresql"
    with engine.connect() as conn:
        if postgres:
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({ADVISORY_LOCK})")
            conn.commit()
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        try:
            with conn.begin():
                run = conn.exec_driver_sql
                if not postgres:
                    run(f"DELETE FROM {SOURCE} WHERE id < 0")  # takes the write lock
                first = f"SELECT id FROM {SOURCE} ORDER BY id LIMIT {int(limit)}"
                upto = run(f"SELECT max(id) FROM ({first}) t").scalar()
                if upto is None:
                    return 0
                for statement in _aggregate_statements(postgres, int(upto)):
                    run(statement)
                return run(f"DELETE FROM {SOURCE} WHERE id <= {int(upto)}").rowcount
        finally:
            if postgres:
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({ADVISORY_LOCK})")
                conn.commit()


def _hist(column: str, count: int, prefix: str) -> list[tuple[str, str]]:
    return [(f"{prefix}{i:02d}", f"count(*) FILTER (WHERE {column} = {i})") for i in range(count)]


def _upsert(table: str, keys: list, measures: list, group_by: list[str], upto: int) -> str:
    """INSERT ... SELECT ... GROUP BY ... ON CONFLICT DO UPDATE adding the measures."""
    names = [name for name, _ in keys + measures]
    exprs = [expr for _, expr in keys + measures]
    conflict = ", ".join(name for name, _ in keys)
    sets = ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name, _ in measures)
    return (
        f"INSERT INTO {table} ({', '.join(names)}) SELECT {', '.join(exprs)} "
        f"FROM {SOURCE} WHERE id <= {upto} GROUP BY {', '.join(group_by)} "
        f"ON CONFLICT ({conflict}) DO UPDATE SET {sets}"
    )


def _aggregate_statements(postgres: bool, upto: int) -> list[str]:
    """The SQL that adds staged rows up to id `upto` to every rollup table."""
    hist = _hist("hb", HIST_BUCKETS, "h")
    hours = _hist("hod", 24, "hr")
    counts = [("n", "count(*)"), ("rt_sum", "sum(rt)")]
    statements = []
    for grain, bucket, extra in (
        (GRAIN_HOUR, "hour", hist),
        (GRAIN_DAY, "day", hist + hours),
        (GRAIN_MONTH, "month", hours),
    ):
        base = [("key_id", "key_id"), ("grain", str(grain)), ("bucket", bucket),
                ("hostname", "hostname"), ("status", "status"), ("bot", "bot")]  # fmt: skip
        group = ["key_id", bucket, "hostname", "status", "bot"]
        daily_hist = hist if grain == GRAIN_DAY else []
        statements.append(_upsert("rollup_traffic", base, counts + extra, group, upto))
        statements.append(
            _upsert(
                "rollup_endpoints",
                base + [("method", "method"), ("endpoint", "endpoint")],
                counts + [("n_query", "sum(has_query)"), ("n_ids", "sum(has_ids)")] + daily_hist,
                group + ["method", "endpoint"],
                upto,
            )
        )
        statements.append(
            _upsert("rollup_locations", base + [("location", "location")], counts + daily_hist,
                    group + ["location"], upto)
        )  # fmt: skip
        statements.append(
            _upsert(
                "rollup_clients",
                base + [("browser", "browser"), ("os", "os"), ("device", "device")],
                counts + daily_hist,
                group + ["browser", "os", "device"],
                upto,
            )
        )
    statements.extend(_user_statements(postgres, upto))
    return statements


def _user_statements(postgres: bool, upto: int) -> list[str]:
    """Per-user rows (day and month, own hostname/bot and the 'any' variant) and the
    distinct-user counts per day, which compare with the rows as they were before."""
    greatest = "GREATEST" if postgres else "MAX"
    create = (
        "CREATE TEMP TABLE IF NOT EXISTS rollup_claimed_users "
        "(key_id INTEGER, grain SMALLINT, hostname VARCHAR(255), bot SMALLINT, bucket BIGINT, "
        "user_key VARCHAR(255), n BIGINT, n_404 BIGINT, seen VARCHAR(12))"
    )
    if postgres:
        create += " ON COMMIT DELETE ROWS"
    selects = []
    for grain, bucket in ((GRAIN_DAY, "day"), (GRAIN_MONTH, "month")):
        for host, bot, dims in (
            ("hostname", "bot", "hostname, bot, "),
            (f"'{ANY_HOST}'", str(ANY_BOT), ""),
        ):
            selects.append(
                f"SELECT key_id, {grain}, {host}, {bot}, {bucket}, user_key, count(*), "
                f"sum(is_404), max(seen) FROM {SOURCE} WHERE id <= {upto} AND user_key <> '' "
                f"GROUP BY key_id, {dims}{bucket}, user_key"
            )
    fill = f"INSERT INTO rollup_claimed_users {' UNION ALL '.join(selects)}"
    same = (
        "r.key_id = a.key_id AND r.grain = a.grain AND r.hostname = a.hostname "
        "AND r.bot = a.bot AND r.bucket = a.bucket AND r.user_key = a.user_key"
    )
    counts = (
        "INSERT INTO rollup_user_counts (key_id, grain, hostname, bot, bucket, users, users_ok) "
        "SELECT a.key_id, a.grain, a.hostname, a.bot, a.bucket, "
        "count(*) FILTER (WHERE r.user_key IS NULL), "
        "count(*) FILTER (WHERE a.n > a.n_404 AND (r.user_key IS NULL OR r.n = r.n_404)) "
        f"FROM rollup_claimed_users a LEFT JOIN rollup_users r ON {same} "
        f"WHERE a.grain = {GRAIN_DAY} GROUP BY a.key_id, a.grain, a.hostname, a.bot, a.bucket "
        "ON CONFLICT (key_id, grain, hostname, bot, bucket) DO UPDATE SET "
        "users = rollup_user_counts.users + excluded.users, "
        "users_ok = rollup_user_counts.users_ok + excluded.users_ok"
    )
    users = (
        "INSERT INTO rollup_users (key_id, grain, hostname, bot, bucket, user_key, n, n_404, "
        "last_seen, location) SELECT key_id, grain, hostname, bot, bucket, user_key, n, n_404, "
        "CAST(substr(seen, 1, 10) AS BIGINT), substr(seen, 11) FROM rollup_claimed_users "
        "WHERE true ON CONFLICT (key_id, grain, hostname, bot, bucket, user_key) DO UPDATE SET "
        "n = rollup_users.n + excluded.n, n_404 = rollup_users.n_404 + excluded.n_404, "
        # The country of the user's latest request (SET sees the row as it was).
        "location = CASE WHEN excluded.last_seen >= rollup_users.last_seen "
        "THEN excluded.location ELSE rollup_users.location END, "
        f"last_seen = {greatest}(rollup_users.last_seen, excluded.last_seen)"
    )
    return [create, "DELETE FROM rollup_claimed_users", fill, counts, users]
