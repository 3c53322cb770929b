"""Users: distinct callers (IP, else user id) per bucket and in all, and the busiest ones.

Rows carry each user's number (server.lake.users): the engine counts a bucket's distinct
users as a bitmap over the key's range of numbers (bitstring_agg), two to three times
cheaper than a distinct count, and groups by the number, not by text (bench/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from server.db import get_engine
from server.lake.users import names_of, number_span
from server.stats.planner import Plan

TOP_USERS = 10
# A bitmap a bucket: past this many bits in all, a distinct count uses less memory.
MAX_BITS = 1 << 28
# Up to this many user numbers, the breakdowns' scan also counts each user's requests
# (server.stats.breakdowns.sets_frame) and the busiest are picked here; past it, a
# query of their own returns only the busiest.
MAX_USERS_IN_SCAN = 200_000
# Up to this many (activity bucket, user) pairs, the breakdowns' scan counts each bucket's
# users too (pairs_fit): a click on one user over all time, not a busy key's overview.
MAX_PAIRS = 1 << 16


@dataclass
class Users:
    distinct: int
    per_bucket: pd.DataFrame  # [bucket, users]
    top: pd.DataFrame  # [user_key, n, last_seen (epoch s), location]


def span_of(key_id: int) -> tuple[int, int] | None:
    """The key's range of user numbers. Read after the rows were opened: every number
    they hold is within it."""
    with get_engine().connect() as conn:
        return number_span(conn, key_id)


def users(rows, plan: Plan, span, limit: int = TOP_USERS, per_bucket=None, per_user=None) -> Users:
    """`per_bucket`: each bucket's distinct users when already counted
    (server.stats.timeseries.traffic_and_users); `per_user`: [ux, n, last_hour] for
    every user of the rows, when already counted (server.stats.breakdowns.users_part)."""
    return Users(*_counts(rows, plan, span, limit, per_bucket, per_user))


def counted_in_scan(span: tuple[int, int] | None) -> bool:
    """Whether the breakdowns' scan should count each user's requests (MAX_USERS_IN_SCAN)."""
    return span is not None and span[1] - span[0] + 1 <= MAX_USERS_IN_SCAN


def pairs_fit(rows, plan: Plan, span: tuple[int, int] | None) -> bool:
    """Whether the rows can hold at most MAX_PAIRS (bucket, user) pairs: few enough for
    the breakdowns' scan to count each (server.stats.timeseries.traffic_and_users). A
    click on a user leaves one user at most."""
    if span is None:
        return False
    one = any(dim == "user" for dim, _value in plan.filters.clicks)
    most = 1 if one else span[1] - span[0] + 1
    return most * _buckets(rows, plan, plan.window.step) <= MAX_PAIRS


def _buckets(rows, plan: Plan, step: int) -> int:
    """How many buckets of `step` seconds the window can hold (for the bitmaps' size)."""
    window = plan.window
    since = window.since
    if since is None:
        firsts = [f.min_us // 1_000_000 for f in rows.snapshot.files]
        since = min(firsts, default=window.until - window.step)
    return max(1, (window.until - since) // step + 1)


def bitmaps_fit(rows, plan: Plan, span: tuple[int, int] | None, step: int | None = None) -> bool:
    """Whether a bitmap over the key's numbers for each bucket of `step` seconds (the
    window's step by default) fits the memory we allow."""
    if span is None:
        return False
    low, high = span
    return (high - low + 1) * _buckets(rows, plan, step or plan.window.step) <= MAX_BITS


def _counts(rows, plan: Plan, span, limit: int, per_bucket=None, per_user=None):
    if span is None:
        return 0, pd.DataFrame({"bucket": [], "users": []}, dtype="int64"), _top(rows, plan, [])
    low, high = span
    if per_bucket is None:
        if bitmaps_fit(rows, plan, span):
            distinct = f"bit_count(bitstring_agg(ux, {low}, {high}))"
        else:
            distinct = "count(DISTINCT ux)"
        per_bucket = _per_bucket(rows, plan, distinct)
    # The busiest users, the number of distinct users alongside (a window over the
    # per-user counts) and each one's last hour, which bounds the next scan.
    if per_user is not None:
        ranked = per_user.sort_values(["n", "ux"], ascending=[False, True]).head(limit)
        busiest = [(int(ux), int(n), int(h), len(per_user)) for ux, n, h in ranked.to_numpy()]
    else:
        busiest = rows.query(
            f"SELECT ux, count(*) AS n, max(hour), count(*) OVER () FROM {{rows}} "
            f"WHERE {plan.where} AND ux IS NOT NULL GROUP BY ux ORDER BY n DESC, ux "
            f"LIMIT {int(limit)}",
            list(plan.params),
        ).fetchall()
    distinct_users = int(busiest[0][3]) if busiest else 0
    return distinct_users, per_bucket, _top(rows, plan, busiest)


def _per_bucket(rows, plan: Plan, distinct: str) -> pd.DataFrame:
    return rows.frame(
        f"SELECT {plan.bucket} AS bucket, {distinct} AS users FROM {{rows}} "
        f"WHERE {plan.where} AND ux IS NOT NULL GROUP BY ALL ORDER BY bucket",
        list(plan.params),
    )


def _top(rows, plan: Plan, busiest: list) -> pd.DataFrame:
    """The busiest users' names, last request and its country."""
    columns = ["user_key", "n", "last_seen", "location"]
    if not busiest:
        return pd.DataFrame(columns=columns)
    numbers = ", ".join(str(int(ux)) for ux, *_rest in busiest)
    # Only their last active hours are read: files skip the row groups of earlier weeks
    # (server.lake.layout: time order, or week first).
    since_hour = min(int(h) for _ux, _n, h, _d in busiest)
    found = rows.query(
        f"SELECT ux, epoch_us(max(created_at)) // 1000000, "
        f"arg_max(coalesce(location, ''), created_at) "
        f"FROM {{rows}} WHERE {plan.where} AND hour >= {since_hour} AND ux IN ({numbers}) "
        "GROUP BY ux",
        list(plan.params),
    ).fetchall()
    with get_engine().connect() as conn:
        names = names_of(conn, [ux for ux, *_rest in busiest])
    details = {ux: (last, location) for ux, last, location in found}
    frame = pd.DataFrame(
        [(names[ux], int(n), *details[ux]) for ux, n, _h, _d in busiest], columns=columns
    )
    # Equal counts are shown by name, as a person would sort them.
    return frame.sort_values(["n", "user_key"], ascending=[False, True]).reset_index(drop=True)
