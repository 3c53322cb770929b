"""Users: distinct callers (IP, else user id) per bucket and in all, and the busiest ones.

Users are grouped by their 64-bit id (server.rules.user_hash), an integer the engine
groups three times faster than the address or id text.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from dash_app.stats.planner import Plan

TOP_USERS = 10


@dataclass
class Users:
    distinct: int
    per_bucket: pd.DataFrame  # [bucket, users]
    top: pd.DataFrame  # [user_key, n, last_seen (epoch s), location]


def users(rows, plan: Plan, limit: int = TOP_USERS) -> Users:
    per_bucket = rows.frame(
        f"SELECT {plan.bucket} AS bucket, count(DISTINCT uid) AS users "
        f"FROM {{rows}} WHERE {plan.where} GROUP BY ALL ORDER BY bucket",
        list(plan.params),
    )
    # The busiest users, with the number of distinct users alongside (a window over the
    # per-user counts, which the engine has in hand anyway).
    busiest = rows.query(
        f"SELECT uid, count(*) AS n, count(*) OVER () FROM {{rows}} "
        f"WHERE {plan.where} AND uid IS NOT NULL GROUP BY uid ORDER BY n DESC, uid "
        f"LIMIT {int(limit)}",
        list(plan.params),
    ).fetchall()
    distinct = int(busiest[0][2]) if busiest else 0
    return Users(distinct, per_bucket, _top(rows, plan, [(u, n) for u, n, _d in busiest]))


def _top(rows, plan: Plan, busiest: list) -> pd.DataFrame:
    """The busiest users' names, last request and its country (their rows only)."""
    columns = ["user_key", "n", "last_seen", "location"]
    if not busiest:
        return pd.DataFrame(columns=columns)
    ids = ", ".join(str(int(uid)) for uid, _n in busiest)
    found = rows.query(
        f"SELECT uid, arg_max(coalesce(ip_address, user_id), created_at), "
        f"epoch(max(created_at))::BIGINT, arg_max(coalesce(location, ''), created_at) "
        f"FROM {{rows}} WHERE {plan.where} AND uid IN ({ids}) GROUP BY uid",
        list(plan.params),
    ).fetchall()
    details = {uid: (name, last, location) for uid, name, last, location in found}
    out = []
    for uid, n in busiest:
        name, last, location = details[uid]
        out.append((name, int(n), int(last), location))
    frame = pd.DataFrame(out, columns=columns)
    # Equal counts are shown by name, as a person would sort them.
    return frame.sort_values(["n", "user_key"], ascending=[False, True]).reset_index(drop=True)
