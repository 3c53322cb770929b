"""Requests over time: the activity chart's counts, with each bucket's distinct users from
the same scan, and a period's total (for the change against the previous period)."""

from __future__ import annotations

import pandas as pd

from server.stats.planner import Plan

# Counting successes as a sum is cheaper for the engine than count(*) FILTER (measured:
# a quarter of the breakdowns query's time, bench/README.md).
N_OK = "sum((status < 400)::INTEGER)"


def total(rows, plan: Plan) -> int:
    """The number of requests matching the plan."""
    found = rows.query(
        f"SELECT count(*) FROM {{rows}} WHERE {plan.where}", list(plan.params)
    ).fetchone()
    return int(found[0])


def traffic(rows, plan: Plan) -> pd.DataFrame:
    """[t, n, n_ok]: requests and successes (below 400) per hour, or per five minutes for a
    24-hour window: the activity chart, hour of day and day of week."""
    frame = rows.frame(
        f"SELECT {plan.grain} AS t, count(*) AS n, {N_OK} AS n_ok "
        f"FROM {{rows}} WHERE {plan.where} GROUP BY ALL",
        list(plan.params),
    )
    return frame.astype("int64")


def traffic_and_users(rows, plan: Plan, span: tuple[int, int]):
    """([t, n, n_ok], [bucket, users]) from one scan: per grain, the counts and a bitmap of
    its users over the key's numbers `span`; each activity bucket's distinct users are the
    bits set in the OR of its grains' bitmaps (every grain lies in one bucket). Only for
    bitmaps that fit (server.stats.users.bitmaps_fit at the grain).

    When the rows hold few (bucket, user) pairs at most (a click on one user, or a key
    with few users), the breakdowns' scan counts them instead, and this scan is saved:
    the refresh's sets frame is then answered from it (server.stats.breakdowns)."""
    # Imported here: server.stats.breakdowns imports this module (N_OK).
    from server.stats import breakdowns, users

    if users.pairs_fit(rows, plan, span):
        frame = breakdowns.sets_frame(
            rows, plan, latency=True, per_user=users.counted_in_scan(span), traffic=True
        )
        return breakdowns.traffic_part(frame)
    low, high = span
    found = rows.frame(
        f"WITH grains AS MATERIALIZED (SELECT {plan.grain} AS t, {plan.bucket} AS bucket, "
        f"count(*) AS n, {N_OK} AS n_ok, "
        f"bitstring_agg(ux, {low}, {high}) FILTER (WHERE ux IS NOT NULL) AS seen "
        f"FROM {{rows}} WHERE {plan.where} GROUP BY ALL) "
        "SELECT 0 AS part, t, n, n_ok FROM grains UNION ALL "
        "SELECT 1, bucket, bit_count(bit_or(seen)), 0 FROM grains "
        "WHERE seen IS NOT NULL GROUP BY bucket",
        list(plan.params),
    )
    counts = found[found["part"] == 0][["t", "n", "n_ok"]].astype("int64")
    per_bucket = found[found["part"] == 1].rename(columns={"t": "bucket", "n": "users"})
    per_bucket = per_bucket[["bucket", "users"]].astype("int64")
    return counts.reset_index(drop=True), per_bucket.sort_values("bucket").reset_index(drop=True)
