"""Rollups: per-key hourly and daily aggregates, written in the enrichment transaction.

This module folds enriched rows into rollup rows (and holds the bucket, path and user
rules the dashboard shares); worker.rollup_writer upserts them. Since the staged batch
is deleted in the same transaction, a batch is counted exactly once.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Iterable
from datetime import UTC, datetime

from server.models import HIST_BUCKETS

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


class Fold:
    """Accumulates enriched rows into rollup rows (dicts keyed by primary key, no key_id).

    traffic:   (grain, bucket, host, status, bot) -> [n, rt_sum, hist | None, hours | None]
    endpoints: (..., method, endpoint) -> [n, rt_sum, n_query, n_ids, hist | None]
    locations: (..., location) -> [n, rt_sum, hist | None]
    clients:   (..., browser, os, device) -> [n, rt_sum, hist | None]
    users:     (grain, host, bot, bucket, user) -> [n, n_404, last_seen, location]

    Grains: hourly rows serve windows of up to 7 days; daily rows carry the response-time
    histograms (traffic's hourly rows too) and requests per hour of day (traffic); monthly
    rows are narrow and let long periods read 12 rows a group instead of 365.
    """

    def __init__(self) -> None:
        self.traffic: dict = {}
        self.endpoints: dict = {}
        self.locations: dict = {}
        self.clients: dict = {}
        self.users: dict = {}
        self._months: dict[int, int] = {}
        self._paths: dict[str, tuple[str, int, int]] = {}

    def add(self, rows: Iterable) -> Fold:
        """Fold rows shaped like worker.enrich.EnrichedRow."""
        for r in rows:
            ts = int(r.created_at.timestamp())
            day = ts - ts % DAY
            month = self._months.get(day)
            if month is None:
                month = self._months[day] = month_start(day)
            host = r.hostname or ""
            bot = 1 if r.is_bot else 0
            rt = r.response_time
            hb = rt_bucket(rt)
            hour_of_day = (ts - day) // HOUR
            endpoint, has_query, has_ids = self._path(r.path)
            location = r.location or ""
            client = (r.browser or "", r.os or "", r.device or "")
            for grain, bucket in (
                (GRAIN_HOUR, ts - ts % HOUR),
                (GRAIN_DAY, day),
                (GRAIN_MONTH, month),
            ):
                daily = grain == GRAIN_DAY
                base = (grain, bucket, host, r.status, bot)
                self._traffic(
                    base,
                    rt,
                    hb if grain != GRAIN_MONTH else None,
                    hour_of_day if grain != GRAIN_HOUR else None,
                )
                ep = self.endpoints.get(key := (*base, r.method, endpoint))
                if ep is None:
                    self.endpoints[key] = [1, rt, has_query, has_ids, _one_hot(hb, daily)]
                else:
                    ep[0] += 1
                    ep[1] += rt
                    ep[2] += has_query
                    ep[3] += has_ids
                    if daily:
                        ep[4][hb] += 1
                _add(self.locations, (*base, location), rt, hb, daily)
                _add(self.clients, (*base, *client), rt, hb, daily)
            who = user_key(r.ip_address, r.user_id)[:255]
            if who:
                self._user(who, host, bot, day, month, ts, r.status == 404, location)
        return self

    def _path(self, path: str) -> tuple[str, int, int]:
        found = self._paths.get(path)
        if found is None:
            endpoint = template_path(path)
            has_query = 1 if "?" in path else 0
            has_ids = 1 if endpoint != strip_query(path)[:255] else 0
            found = self._paths[path] = (endpoint, has_query, has_ids)
        return found

    def _traffic(self, key: tuple, rt: int, hb: int | None, hour_of_day: int | None) -> None:
        acc = self.traffic.get(key)
        if acc is None:
            hist = [0] * HIST_BUCKETS if hb is not None else None
            hours = [0] * 24 if hour_of_day is not None else None
            acc = self.traffic[key] = [0, 0, hist, hours]
        acc[0] += 1
        acc[1] += rt
        if hb is not None:
            acc[2][hb] += 1
        if hour_of_day is not None:
            acc[3][hour_of_day] += 1

    def _user(self, who, host, bot, day, month, ts, is_404, location) -> None:
        users = self.users
        for grain, bucket in ((GRAIN_DAY, day), (GRAIN_MONTH, month)):
            for variant in ((host, bot), (ANY_HOST, ANY_BOT)):
                key = (grain, *variant, bucket, who)
                acc = users.get(key)
                if acc is None:
                    users[key] = [1, 1 if is_404 else 0, ts, location]
                    continue
                acc[0] += 1
                if is_404:
                    acc[1] += 1
                if ts >= acc[2]:
                    acc[2] = ts
                    acc[3] = location


def _add(target: dict, key: tuple, rt: int, hb: int, hist: bool) -> None:
    acc = target.get(key)
    if acc is None:
        target[key] = [1, rt, _one_hot(hb, hist)]
        return
    acc[0] += 1
    acc[1] += rt
    if hist:
        acc[2][hb] += 1


def _one_hot(index: int, wanted: bool = True) -> list[int] | None:
    if not wanted:
        return None
    hist = [0] * HIST_BUCKETS
    hist[index] = 1
    return hist


def write_rollups(conn, rows: list) -> None:
    """Add enriched rows (all of one key) to the rollups, inside the caller's transaction."""
    from worker.rollup_writer import write_fold

    if rows:
        write_fold(conn, rows[0].key_id, Fold().add(rows))
