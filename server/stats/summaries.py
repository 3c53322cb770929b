"""Long periods from closed months' summaries (server.lake.summaries), the rest (the
current month, late rows, hot rows) from the rows themselves.

Every question here merges two parts by sums and unions: the summaries' rows for the files
wholly inside the period (server.lake.summaries) and the same question asked of the other
rows. The numbers are the same as asking every row (tests compare the two ways); only
the work is smaller: a few summaries instead of months of rows. With no filter the
unsliced family answers; a click on columns of one sliced family (status and version,
country, browser / OS / device, country with browser / OS / device, or one endpoint)
selects that family's rows with the very conditions the rows are selected with. A file the window
starts in is answered the same way when most of it lies inside the window: its summary,
with the timed parts cut at the window's start and its rows before the window taken off
the others (Outside).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
from collections import OrderedDict
from collections.abc import Callable

import pandas as pd

from server.config import current_config
from server.db import get_engine
from server.lake import summaries as d
from server.lake.engine import sql_str
from server.lake.users import names_of
from server.rules import DAY
from server.stats import breakdowns, cache, latency, planner, timeseries, users
from server.stats.breakdowns import _AGENT, _LOCATION, _ROUTE, _VERSION
from server.stats.conditions import filter_conditions
from server.stats.filters import Filters, Window
from server.stats.planner import Plan

# Which sets-frame group each kind of summary row feeds, and into which column.
_SETS = {d.ROUTE: (_ROUTE, "route"), d.VERSION: (_VERSION, "version"),
         d.LOCATION: (_LOCATION, "location"), d.AGENT: (_AGENT, "user_agent")}  # fmt: skip
# The columns a click's condition reads (server.stats.conditions), for the clicks a
# summary family can answer.
# An endpoint's click reads `route` in the view family() allows (templates, its label).
_READS = {"status": {"status"}, "status_class": {"status"}, "version": {"version"},
          "location": {"location"}, "browser": {"browser"}, "os": {"os"},
          "device": {"device"}, "endpoint": {"route"}}  # fmt: skip


def family(filters: Filters, window: Window) -> str | None:
    """The summary family that answers these filters over daily buckets, or None: the
    conditions may read only that family's columns, endpoints must show as templates."""
    if window.step != DAY:
        return None
    if filters.hostname or filters.exclude_bots or filters.hidden:
        return None
    if filters.keep_ids or filters.keep_params:
        return None
    reads = {"status"} if filters.exclude_404 else set()
    for dim, _value in (*filters.clicks, *filters.fixed):
        if dim not in _READS:
            return None
        reads |= _READS[dim]
    return next((name for name, cols in d.FAMILIES.items() if reads <= set(cols)), None)


def usable(filters: Filters, window: Window) -> bool:
    return family(filters, window) is not None


def covered(files, window: Window) -> list:
    """Files with a summary of today's layout and every row inside the window."""
    since_us = None if window.since is None else window.since * 1_000_000
    until_us = window.until * 1_000_000
    return [
        f
        for f in files
        if d.is_current(f.summary)
        and (since_us is None or f.min_us >= since_us)
        and f.max_us < until_us
    ]


# A file that starts before the window and ends inside it ("straddles" its start: the
# first month of 30 days, 6 months or a year) is answered by its summary less its rows
# before the window when those are at most this share of its time span (fewer rows read
# than the window's part of it), and the window's part holds about STRADDLE_ROWS rows or
# more. Measured (bench/README.md, first refreshes, the two ways alternated): a year at
# 100 M rows, 3.3 M rows in the window's part, 1.23-1.84x faster; at 10 M rows, 0.57-0.65 M
# rows, 0.93-1.18x for 6 months and a year, and 30 days 0.76-0.93x (the summaries' fixed
# cost is more than reading so few rows).
STRADDLE_SHARE = 0.5
STRADDLE_ROWS = 1_000_000


def straddling(files, window: Window) -> list:
    """Files with a summary of today's layout that start before the window (which starts
    on a whole day: every summary part with a time is daily or hourly), end inside it,
    have at most STRADDLE_SHARE of their time span before it and about STRADDLE_ROWS rows
    or more inside it (rows spread evenly over the span, as a month's do)."""
    if window.since is None:
        return []
    since_us = window.since * 1_000_000
    until_us = window.until * 1_000_000
    return [
        f
        for f in files
        if d.is_current(f.summary)
        and f.min_us < since_us <= f.max_us < until_us
        and since_us - f.min_us <= STRADDLE_SHARE * (f.max_us - f.min_us)
        and f.rows * (f.max_us - since_us) >= STRADDLE_ROWS * (f.max_us - f.min_us)
    ]


class Outside:
    """The rows of straddling files before the window: what their summaries hold beyond
    it, counted here to be taken off (the parts without a time: endpoints, versions,
    countries, agents, user ids and users; the timed parts are cut at the window's
    start in the summaries' SQL)."""

    def __init__(self, rows, files, plan: Plan) -> None:
        self.files = files
        self.rows = rows.only(files)
        window = Window(None, plan.window.since, plan.window.step, plan.window.since)
        self.plan = planner.plan(plan.key_id, plan.filters, window, plan.users)

    def sets(self) -> pd.DataFrame:
        """Their sets frame with every count negative."""
        frame = breakdowns.sets_frame(self.rows, self.plan)
        counts = [c for c in ("n", "n_ok", "rt_sum") if c in frame.columns]
        return frame.assign(**{c: -frame[c].fillna(0) for c in counts})

    def per_user_sql(self) -> tuple[str, list]:
        """SQL for [ux, n, last_us, last_loc] rows with negative counts (no last request:
        a user's last one in the window is a later one), and its parameters."""
        sql = (
            f" UNION ALL SELECT ux, -count(*), NULL::BIGINT, NULL::VARCHAR "
            f"FROM {self.rows.relation} WHERE {self.plan.where} AND ux IS NOT NULL GROUP BY ux"
        )
        return sql, list(self.plan.params)


class Summaries:
    """The rows of some files' summaries that answer a plan: its family's, selected by its
    filters' conditions (bind parameters in `params`), as SQL."""

    def __init__(self, rows, files, plan: Plan) -> None:
        self.rows = rows
        urls = ", ".join(sql_str(rows.url(f.summary)) for f in files)
        name = family(plan.filters, plan.window)
        if name is None:
            raise ValueError("no summary family answers these filters")
        conditions = filter_conditions(plan.filters, plan.label, plan.users)
        # Timed parts (hours, days) start at the window's: a straddling file's earlier
        # days are left out here, its other parts' are taken off (Outside).
        since = plan.window.since
        timed = "" if since is None else f" AND (t IS NULL OR t >= {int(since)})"
        self.relation = (
            f"(SELECT * FROM read_parquet([{urls}]) "
            f"WHERE fam = {sql_str(name)} AND {conditions.sql}{timed})"
        )
        self.params = list(conditions.params)

    def frame(self, sql: str) -> pd.DataFrame:
        """The answer of `sql` over these summaries, remembered (_Kept): the same question
        of the same files has the same answer. Callers must not change it in place."""
        sql = sql.replace("{summaries}", self.relation)
        key = (sql, tuple(self.params))
        return remembered(key, lambda: self.rows.cursor.execute(sql, self.params).df())

    def derived(self, sql: str, name: str, shape):
        """`shape` (a function of frames) of Summaries.frame(sql), remembered with it."""
        key = (sql.replace("{summaries}", self.relation), tuple(self.params), name)
        return remembered(key, lambda: shape(self.frame(sql)))


class _Kept:
    """Answers from closed months' summaries, kept in this process, newest last, at most
    `limit` bytes. Exact without any check: a question names its files, and a file never
    changes once written (compaction and retention write new files under new names,
    an erased key's files are deleted); the rest of a refresh (the current month, hot
    rows) is asked every time.

    Measured (bench/README.md, "Issue 34: the refresh's fixed cost"): at 30 M rows an
    unfiltered all-time refresh spent 0.45 s of its 0.6 s of engine work and 0.1 s of
    pandas on closed months' summaries; a repeated view (the page's auto-refresh, a click
    back) answers them from here, and the rest of its work is the current month's. One
    answer over an eighth of the bound is not kept (it would push out every other).
    A 20-line OrderedDict LRU: cache.py's store keeps whole answers by the hot rows'
    state, which every arriving row changes."""

    def __init__(self, limit: int) -> None:
        self.limit, self.size = limit, 0
        self.frames: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            found = self.frames.get(key)
            if found is not None:
                self.frames.move_to_end(key)
            return found

    @staticmethod
    def _bytes(key, value) -> int:
        frames = value if isinstance(value, tuple) else (value,)
        return len(key[0]) + sum(int(f.memory_usage(index=True, deep=True).sum()) for f in frames)

    def put(self, key, value) -> None:
        """`value`: a frame, or a tuple of frames."""
        size = self._bytes(key, value)
        if size > self.limit // 8:  # one big answer would push out every other
            return
        with self.lock:
            if key in self.frames:
                return
            self.frames[key] = value
            self.size += size
            while self.size > self.limit:
                old_key, old = self.frames.popitem(last=False)
                self.size -= self._bytes(old_key, old)

    def clear(self) -> None:
        with self.lock:
            self.frames.clear()
            self.size = 0


KEPT_BYTES = 64 * 1024 * 1024
_kept = _Kept(KEPT_BYTES)

# Shared by every web process in Redis (REDIS_URL), SUMMARY_CACHE_MB at most, oldest
# stored out first. Each gunicorn worker keeps its own _Kept, so without it a view was
# answered from the summaries cold by up to every worker in turn (a year at 10 M rows:
# 0.59 s cold, 0.33 s with its summaries' answers at hand; bench/README.md, issue 34,
# "summaries shared"). An entry lives a day at most: a window's summary questions
# change with its first day.
SHARED_PREFIX = "apia:summaries:"
SHARED_TTL_SECONDS = 24 * 3600
_shared_state: dict = {"pid": None, "signature": None, "store": None}
_shared_lock = threading.Lock()
# This process's reads of the shared answers (tests read them).
shared_counts = {"hit": 0, "miss": 0}


def shared_store() -> cache.RedisStore | None:
    """This process's way to the summaries' answers shared in Redis, or None (no
    REDIS_URL, or SUMMARY_CACHE_MB=0)."""
    settings = current_config()
    signature = (settings.REDIS_URL, settings.SUMMARY_CACHE_MB)
    with _shared_lock:
        if _shared_state["pid"] != os.getpid() or _shared_state["signature"] != signature:
            limit = settings.SUMMARY_CACHE_MB * 1024 * 1024
            found = None
            if settings.REDIS_URL and limit:
                found = cache.RedisStore(
                    settings.REDIS_URL, limit, prefix=SHARED_PREFIX, ttl=SHARED_TTL_SECONDS
                )
            _shared_state.update(pid=os.getpid(), signature=signature, store=found)
        return _shared_state["store"]


def remembered(key: tuple, compute: Callable):
    """The answer to a question of closed months' summaries (`key`: its SQL naming
    the files, and its parameters): kept by this process (_Kept), else shared by
    another (Redis), else `compute()`'s, kept in both. Exact for the reason _Kept is:
    the files a question names never change. Entries are sealed with SECRET_KEY and
    carry their whole question, checked on every read (server.stats.cache). A Redis
    that fails costs the shortcut, never the answer."""
    found = _kept.get(key)
    if found is not None:
        return found
    shared = shared_store()
    question = name = None
    if shared is not None:
        question = f"{cache.deployment()}|{key!r}"
        name = SHARED_PREFIX + hashlib.sha256(question.encode()).hexdigest()
        found = cache.read_entry(shared, name, (question,))
        if found is not cache.MISSING:
            shared_counts["hit"] += 1
            _kept.put(key, found)
            return found
        shared_counts["miss"] += 1
    found = compute()
    _kept.put(key, found)
    if shared is not None:  # one big answer would push out every other
        cache.write_entry(shared, name, (question, found), largest=shared.limit // 8)
    return found


def breakdowns_from(
    raw, frame, summaries: Summaries, plan: Plan, outside: Outside | None = None
) -> breakdowns.Breakdowns:
    """`frame`: the other rows' sets frame (server.stats.breakdowns.sets_frame);
    `outside`: the straddling files' rows before the window, taken off."""
    parts = [frame]
    taken = outside.sets() if outside else None
    if taken is not None:
        parts.append(taken)
    found = summaries.frame(
        "SELECT kind, k, status, n, n_ok, rt_sum FROM {summaries} "
        f"WHERE kind IN ({', '.join(sql_str(k) for k in _SETS)})"
    )
    # Summed per id here: a sliced family holds an id once per month and slice (714,000
    # rows for 2,400 ids at 30 M rows under a status click).
    ids = summaries.frame(
        f"SELECT k AS user_id, sum(n)::BIGINT AS n FROM {{summaries}} "
        f"WHERE kind = {sql_str(d.USER_ID)} GROUP BY k ORDER BY k"
    )
    counts = pd.DataFrame({"user_id": ids["user_id"].to_numpy(), "n": ids["n"].to_numpy()})
    ids_parts = [breakdowns.user_ids_part(frame), counts]
    if taken is not None:
        ids_parts.append(breakdowns.user_ids_part(taken))
    breakdowns.note_user_ids(summaries.rows, plan, pd.concat(ids_parts))
    for kind, (group, column) in _SETS.items():
        part = found[found["kind"] == kind]
        if part.empty:
            continue
        shaped = pd.DataFrame({"g": group, column: part["k"].to_numpy()})
        for name in ("status", "n", "n_ok", "rt_sum"):
            shaped[name] = part[name].to_numpy()
        parts.append(shaped)
    traffic = pd.concat(
        [
            timeseries.traffic(raw, plan),
            summaries.frame(
                f"SELECT t, n, n_ok FROM {{summaries}} WHERE kind = {sql_str(d.HOUR)}"
            ).astype("int64"),
        ],
        ignore_index=True,
    )
    frame = pd.concat(parts, ignore_index=True).reindex(columns=frame.columns)
    return breakdowns.shape(frame, traffic, plan)


def latency_from(
    raw_latency: pd.DataFrame, summaries: Summaries
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """([rt, n], [bucket, p50, p95]) over the summaries' days and the other rows'
    [bucket, rt, n] (server.stats.breakdowns.latency_part). A day's percentiles need only
    that day's pairs: the summaries' days are shaped once (remembered, a year's half
    million pairs sorted in 0.03-0.06 s) and only days the other rows hold (today's, late
    rows) are shaped each time, from both sources."""
    sql = f"SELECT t AS bucket, rt, n FROM {{summaries}} WHERE kind = {sql_str(d.DAY_RT)}"
    overall, per_day = summaries.derived(
        sql, "latency", lambda f: (latency.overall_frame(f), latency.per_bucket(f))
    )
    raw_latency = raw_latency.dropna(subset=["bucket", "rt"])
    if raw_latency.empty:  # copies: callers own what they are handed
        return overall.copy(), per_day.copy()
    days = set(raw_latency["bucket"].tolist()) & set(per_day["bucket"].tolist())
    pairs = raw_latency
    if days:  # the summaries' pairs of those days too (kept if small enough, else read)
        found = summaries.frame(sql)
        pairs = pd.concat([raw_latency, found[found["bucket"].isin(days)]], ignore_index=True)
    fresh = latency.per_bucket(pairs)
    buckets = [per_day[~per_day["bucket"].isin(days)], fresh]
    per_day = pd.concat([b for b in buckets if not b.empty], ignore_index=True)
    summed = pd.concat([overall, latency.overall_frame(raw_latency)], ignore_index=True)
    return (
        latency.overall_frame(summed),
        per_day.sort_values("bucket", kind="stable").reset_index(drop=True),
    )


def users_from(
    rows,
    raw,
    summaries: Summaries,
    plan: Plan,
    limit: int = users.TOP_USERS,
    outside: Outside | None = None,
):
    """Each bucket's distinct users and the busiest users. The summaries' part of each is
    its own question (remembered, Summaries.frame), merged with the other rows': a day
    both hold (late rows of a summarised month) is counted again from both sets."""
    span = users.span_of(plan.key_id)
    if span is None:
        return users.Users(0, pd.DataFrame({"bucket": [], "users": []}), users._top(raw, plan, []))
    low, high = span
    buckets = users.bitmaps_fit(rows, plan, span)
    distinct = f"bit_count(bitstring_agg(ux, {low}, {high}))" if buckets else "count(DISTINCT ux)"
    day_users = f"kind = {sql_str(d.DAY_USER)}"
    summed = summaries.frame(
        f"SELECT t AS bucket, {distinct} AS users FROM {{summaries}} WHERE {day_users} GROUP BY t"
    )
    counted = raw.frame(
        f"SELECT {plan.bucket} AS bucket, {distinct} AS users FROM {{rows}} "
        f"WHERE {plan.where} AND ux IS NOT NULL GROUP BY bucket",
        list(plan.params),
    )
    both = sorted(set(summed["bucket"].tolist()) & set(counted["bucket"].tolist()))
    parts = [summed[~summed["bucket"].isin(both)], counted[~counted["bucket"].isin(both)]]
    if both:
        days = ", ".join(str(int(t)) for t in both)
        pairs = (
            f"SELECT t, ux FROM {summaries.relation} WHERE {day_users} AND t IN ({days}) "
            f"UNION ALL SELECT {plan.bucket} AS t, ux FROM {raw.relation} "
            f"WHERE {plan.where} AND ux IS NOT NULL AND {plan.bucket} IN ({days})"
        )
        parts.append(
            rows.cursor.execute(
                f"SELECT t AS bucket, {distinct} AS users FROM ({pairs}) GROUP BY t",
                [*summaries.params, *plan.params],  # in the order the SQL names them
            ).df()
        )
    per_bucket = (
        pd.concat([p.astype("int64") for p in parts], ignore_index=True)
        .sort_values("bucket")
        .reset_index(drop=True)
    )
    busiest = _busiest(rows, raw, summaries, plan, limit, outside)
    with get_engine().connect() as conn:
        names = names_of(conn, [row[0] for row in busiest])
    top = pd.DataFrame(
        [(names[ux], int(n), int(last) // 1_000_000, loc) for ux, n, last, loc, _c in busiest],
        columns=["user_key", "n", "last_seen", "location"],
    )
    top = top.sort_values(["n", "user_key"], ascending=[False, True]).reset_index(drop=True)
    return users.Users(int(busiest[0][4]) if busiest else 0, per_bucket, top)


_registered = itertools.count()


def _busiest(
    rows, raw, summaries: Summaries, plan: Plan, limit: int, outside: Outside | None = None
) -> list:
    """[(ux, n, last_us, last_loc, users)]: the busiest users, from the summaries' users
    (grouped once per user, remembered) and the other rows', less a straddling file's
    rows before the window (`outside`): a user left with none is not one of the window's."""
    taken, taken_params = outside.per_user_sql() if outside else ("", [])
    kept = summaries.frame(
        f"SELECT ux, sum(n)::BIGINT AS n, max(last_us) AS last_us, "
        f"arg_max(last_loc, last_us) AS last_loc FROM {{summaries}} "
        f"WHERE kind = {sql_str(d.USER)} GROUP BY ux ORDER BY ux"
    )
    name = f"summary_users_{next(_registered)}"
    rows.cursor.register(name, kept)
    try:
        each = (
            f"SELECT ux, n, last_us, last_loc FROM {name} "
            f"UNION ALL SELECT ux, count(*), epoch_us(max(created_at)), "
            f"arg_max(coalesce(location, ''), created_at) FROM {raw.relation} "
            f"WHERE {plan.where} AND ux IS NOT NULL GROUP BY ux{taken}"
        )
        return rows.cursor.execute(
            f"SELECT ux, sum(n) AS n, max(last_us), arg_max(last_loc, last_us), "
            f"count(*) OVER () FROM ({each}) GROUP BY ux HAVING sum(n) > 0 "
            f"ORDER BY n DESC, ux LIMIT {int(limit)}",
            [*plan.params, *taken_params],
        ).fetchall()
    finally:
        rows.cursor.unregister(name)


def total_from(rows, plan: Plan) -> int:
    """The requests of a period, from the summaries of its files and the other rows."""
    files = covered(rows.snapshot.files, plan.window)
    raw = rows.without(files)
    count = raw.query(f"SELECT count(*) FROM {{rows}} WHERE {plan.where}", list(plan.params))
    total = int(count.fetchone()[0])
    if files:
        summed = Summaries(rows, files, plan).frame(
            f"SELECT coalesce(sum(n), 0) AS n FROM {{summaries}} WHERE kind = {sql_str(d.HOUR)}"
        )
        total += int(summed["n"].iloc[0])
    return total
