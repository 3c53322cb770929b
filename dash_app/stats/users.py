"""Users: distinct callers (IP, else user id) per bucket and in all, and the busiest ones.

Rows carry each user's number (server.lake.users): the engine counts a bucket's distinct
users as a bitmap over the key's range of numbers (bitstring_agg), two to three times
cheaper than a distinct count, and groups by the number, not by text (bench/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from dash_app.stats.planner import Plan
from server.db import get_engine
from server.lake.users import names_of, number_span

TOP_USERS = 10
# A bitmap a bucket: past this many bits in all, a distinct count uses less memory.
MAX_BITS = 1 << 28


@dataclass
class Users:
    distinct: int
    per_bucket: pd.DataFrame  # [bucket, users]
    top: pd.DataFrame  # [user_key, n, last_seen (epoch s), location]


def users(rows, plan: Plan, limit: int = TOP_USERS) -> Users:
    with get_engine().connect() as conn:
        # Read after the rows were opened: every number they hold is within the span.
        span = number_span(conn, plan.key_id)
    return Users(*_counts(rows, plan, span, limit))


def _buckets(rows, plan: Plan) -> int:
    """How many activity buckets the window can hold (for the bitmaps' size)."""
    window = plan.window
    since = window.since
    if since is None:
        firsts = [f.min_us // 1_000_000 for f in rows.snapshot.files]
        since = min(firsts, default=window.until - window.step)
    return max(1, (window.until - since) // window.step + 1)


def bitmap_buckets(rows, plan: Plan, span: tuple[int, int]) -> bool:
    """Whether a bitmap a bucket over the key's numbers fits the memory we allow."""
    low, high = span
    return (high - low + 1) * _buckets(rows, plan) <= MAX_BITS


def _counts(rows, plan: Plan, span, limit: int):
    if span is None:
        return 0, pd.DataFrame({"bucket": [], "users": []}, dtype="int64"), _top(rows, plan, [])
    low, high = span
    if bitmap_buckets(rows, plan, span):
        distinct = f"bit_count(bitstring_agg(ux, {low}, {high}))"
    else:
        distinct = "count(DISTINCT ux)"
    per_bucket = rows.frame(
        f"SELECT {plan.bucket} AS bucket, {distinct} AS users FROM {{rows}} "
        f"WHERE {plan.where} AND ux IS NOT NULL GROUP BY ALL ORDER BY bucket",
        list(plan.params),
    )
    # The busiest users, the number of distinct users alongside (a window over the
    # per-user counts) and each one's last hour, which bounds the next scan.
    busiest = rows.query(
        f"SELECT ux, count(*) AS n, max(hour), count(*) OVER () FROM {{rows}} "
        f"WHERE {plan.where} AND ux IS NOT NULL GROUP BY ux ORDER BY n DESC, ux "
        f"LIMIT {int(limit)}",
        list(plan.params),
    ).fetchall()
    distinct_users = int(busiest[0][3]) if busiest else 0
    return distinct_users, per_bucket, _top(rows, plan, busiest)


def _top(rows, plan: Plan, busiest: list) -> pd.DataFrame:
    """The busiest users' names, last request and its country."""
    columns = ["user_key", "n", "last_seen", "location"]
    if not busiest:
        return pd.DataFrame(columns=columns)
    numbers = ", ".join(str(int(ux)) for ux, *_rest in busiest)
    # Only their last active hours are read (the files are sorted by time).
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
