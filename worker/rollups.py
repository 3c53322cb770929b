"""Rollups: per-key hourly and daily aggregates, written in the enrichment transaction.

Each enriched batch is folded into a few rows per table and upserted with
`INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n`, so concurrent workers add up
instead of overwriting each other, and since the staged batch is deleted in the same
transaction a batch is counted exactly once. Rows are upserted in primary-key order so
two workers touching the same buckets lock them in the same order (no deadlocks).
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from server.models import (
    HIST_BUCKETS,
    HIST_COLUMNS,
    rollup_clients,
    rollup_endpoints,
    rollup_locations,
    rollup_traffic,
    rollup_users,
)

HOUR = 3600
DAY = 86400
GRAIN_HOUR = 1
GRAIN_DAY = 2
GRAIN_SECONDS = {GRAIN_HOUR: HOUR, GRAIN_DAY: DAY}

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


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


class Fold:
    """Accumulates enriched rows into rollup rows (dicts keyed by primary key)."""

    def __init__(self) -> None:
        self.traffic: dict = {}
        self.endpoints: dict = {}
        self.locations: dict = {}
        self.clients: dict = {}
        self.users: dict = {}

    def add(self, rows: Iterable) -> Fold:
        """Fold rows shaped like worker.enrich.EnrichedRow."""
        traffic, endpoints = self.traffic, self.endpoints
        locations, clients, users = self.locations, self.clients, self.users
        templates: dict[str, tuple[str, int, int]] = {}
        for r in rows:
            ts = _epoch(r.created_at)
            hour = ts - ts % HOUR
            day = ts - ts % DAY
            host = r.hostname or ""
            status = r.status
            bot = 1 if r.is_bot else 0
            rt = r.response_time
            hb = rt_bucket(rt)
            path_info = templates.get(r.path)
            if path_info is None:
                endpoint = template_path(r.path)
                has_query = 1 if "?" in r.path else 0
                has_ids = 1 if endpoint != strip_query(r.path)[:255] else 0
                path_info = templates[r.path] = (endpoint, has_query, has_ids)
            endpoint, has_query, has_ids = path_info
            for grain, bucket in ((GRAIN_HOUR, hour), (GRAIN_DAY, day)):
                daily = grain == GRAIN_DAY
                base = (grain, bucket, host, status, bot)
                _add(traffic, base, rt, hb, True)
                _add(endpoints, (*base, r.method, endpoint), rt, hb, daily, has_query, has_ids)
                _add(locations, (*base, r.location or ""), rt, hb, daily)
                _add(clients, (*base, r.browser or "", r.os or "", r.device or ""), rt, hb, daily)
                who = user_key(r.ip_address, r.user_id)
                if who:
                    key = (grain, bucket, host, bot, who[:255])
                    acc = users.get(key)
                    if acc is None:
                        users[key] = [1, 1 if status == 404 else 0, ts, r.location or ""]
                    else:
                        acc[0] += 1
                        if status == 404:
                            acc[1] += 1
                        if ts >= acc[2]:
                            acc[2] = ts
                            acc[3] = r.location or ""
        return self


def _add(target: dict, key: tuple, rt: int, hb: int, hist: bool, *extra: int) -> None:
    acc = target.get(key)
    if acc is None:
        # [n, rt_sum, *extra counts, histogram or None]
        acc = target[key] = [0, 0, *([0] * len(extra)), [0] * HIST_BUCKETS if hist else None]
    acc[0] += 1
    acc[1] += rt
    for i, value in enumerate(extra, start=2):
        acc[i] += value
    if hist:
        acc[-1][hb] += 1


# --- writing ---------------------------------------------------------------------------------

_DIMS = {
    "rollup_traffic": ("grain", "bucket", "hostname", "status", "bot"),
    "rollup_endpoints": ("grain", "bucket", "hostname", "status", "bot", "method", "endpoint"),
    "rollup_locations": ("grain", "bucket", "hostname", "status", "bot", "location"),
    "rollup_clients": ("grain", "bucket", "hostname", "status", "bot", "browser", "os", "device"),
    "rollup_users": ("grain", "bucket", "hostname", "bot", "user_key"),
}
_EXTRA = {"rollup_endpoints": ("n_query", "n_ids")}


def _count_rows(table, key_id: int, folded: dict) -> list[dict]:
    dims = _DIMS[table.name]
    extra = _EXTRA.get(table.name, ())
    out = []
    for key in sorted(folded):
        acc = folded[key]
        row = {"key_id": key_id, **dict(zip(dims, key, strict=True))}
        row["n"], row["rt_sum"] = acc[0], acc[1]
        for i, name in enumerate(extra, start=2):
            row[name] = acc[i]
        hist = acc[-1]
        for i, name in enumerate(HIST_COLUMNS):
            row[name] = hist[i] if hist is not None else None
        out.append(row)
    return out


def _user_rows(key_id: int, folded: dict) -> list[dict]:
    dims = _DIMS["rollup_users"]
    return [
        {
            "key_id": key_id,
            **dict(zip(dims, key, strict=True)),
            "n": acc[0],
            "n_404": acc[1],
            "last_seen": acc[2],
            "location": acc[3],
        }
        for key, acc in sorted(folded.items())
    ]


def _upsert(conn, table, rows: list[dict]) -> None:
    if not rows:
        return
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(table)
    excluded = stmt.excluded
    keys = [c.name for c in table.primary_key.columns]
    updates = {}
    for column in table.columns:
        if column.name in keys:
            continue
        if column.name == "last_seen":
            updates["last_seen"] = _greatest(conn, table.c.last_seen, excluded.last_seen)
        elif column.name == "location" and table is rollup_users:
            # The country of the user's latest request.
            from sqlalchemy import case

            updates["location"] = case(
                (excluded.last_seen >= table.c.last_seen, excluded.location),
                else_=table.c.location,
            )
        else:
            updates[column.name] = table.c[column.name] + excluded[column.name]
    conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=updates), rows)


def _greatest(conn, a, b):
    from sqlalchemy import func

    # SQLite's two-argument max() is its GREATEST.
    return func.greatest(a, b) if conn.dialect.name == "postgresql" else func.max(a, b)


def write_fold(conn, key_id: int, fold: Fold) -> None:
    """Upsert a fold's rows, each table in primary-key order."""
    _upsert(conn, rollup_traffic, _count_rows(rollup_traffic, key_id, fold.traffic))
    _upsert(conn, rollup_endpoints, _count_rows(rollup_endpoints, key_id, fold.endpoints))
    _upsert(conn, rollup_locations, _count_rows(rollup_locations, key_id, fold.locations))
    _upsert(conn, rollup_clients, _count_rows(rollup_clients, key_id, fold.clients))
    _upsert(conn, rollup_users, _user_rows(key_id, fold.users))


def write_rollups(conn, rows: list) -> None:
    """Add enriched rows (all of one key) to the rollups, inside the caller's transaction."""
    if not rows:
        return
    write_fold(conn, rows[0].key_id, Fold().add(rows))
